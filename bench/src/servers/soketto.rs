//! soketto on smol, as its own echo example does it: buffered reader and
//! writer, permessage-deflate offered, `receive_data` then send and
//! `flush` per message (its receive future is not cancel-safe, so the
//! batching `now_or_never` loop is not an option).

use futures_util::io::{BufReader, BufWriter};
use smol::net::TcpStream;
use soketto::extension::deflate::Deflate;
use soketto::handshake::{server::Response, Server};
use soketto::{Data, Mode};

pub async fn echo(stream: TcpStream) {
    let _ = run(stream).await;
}

async fn run(stream: TcpStream) -> Result<(), soketto::BoxedError> {
    let socket = BufReader::with_capacity(8 << 10, BufWriter::with_capacity(16 << 10, stream));
    let mut server = Server::new(socket);
    server.add_extension(Box::new(Deflate::new(Mode::Server)));
    let key = server.receive_request().await?.key();
    server
        .send_response(&Response::Accept {
            key,
            protocol: None,
        })
        .await?;
    let mut builder = server.into_builder();
    builder.set_max_message_size(super::MAX_MESSAGE);
    builder.set_max_frame_size(super::MAX_MESSAGE);
    let (mut sender, mut receiver) = builder.finish();
    let mut message = Vec::new();
    loop {
        message.clear();
        match receiver.receive_data(&mut message).await? {
            Data::Binary(_) => sender.send_binary_mut(&mut message).await?,
            Data::Text(_) => sender.send_text(std::str::from_utf8(&message)?).await?,
        }
        sender.flush().await?;
    }
}
