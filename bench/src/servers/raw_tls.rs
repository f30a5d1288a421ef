//! The ceiling over TLS: a tokio-rustls echo with no WebSocket, the TLS
//! analogue of `raw_tcp`. Decrypted bytes are read into one buffer shared
//! by every connection and written straight back into the connection's
//! rustls session, so an idle connection costs its socket, its task and
//! its rustls state: the floor for the memory scenario too.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io::{self, ErrorKind};
use std::pin::Pin;
use std::task::Poll;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

thread_local! {
    static BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; 64 << 10]);
}

pub async fn echo(stream: TcpStream, tls: &'static TlsAcceptor) {
    if let Ok(mut stream) = tls.accept(stream).await {
        let _ = run(&mut stream).await;
    }
}

async fn run(stream: &mut TlsStream<TcpStream>) -> io::Result<()> {
    loop {
        // Read whatever is decrypted and hand it back to rustls without
        // awaiting in between; only plaintext the session would not take
        // is kept, per connection, until it does.
        let rest = poll_fn(|cx| {
            BUF.with(|buf| {
                let mut buf = buf.borrow_mut();
                let mut rb = ReadBuf::new(&mut buf);
                match Pin::new(&mut *stream).poll_read(cx, &mut rb) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Ready(Ok(())) => {}
                }
                let data = rb.filled();
                if data.is_empty() {
                    return Poll::Ready(Err(ErrorKind::UnexpectedEof.into()));
                }
                // Encrypts into the session and writes what the socket takes.
                let mut taken = 0;
                while taken < data.len() {
                    match Pin::new(&mut *stream).poll_write(cx, &data[taken..]) {
                        Poll::Ready(Ok(0)) | Poll::Pending => break,
                        Poll::Ready(Ok(n)) => taken += n,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    }
                }
                Poll::Ready(Ok((taken < data.len()).then(|| data[taken..].to_vec())))
            })
        })
        .await?;
        if let Some(rest) = rest {
            stream.write_all(&rest).await?;
        }
        // Records the socket would not take yet wait in the session.
        stream.flush().await?;
    }
}
