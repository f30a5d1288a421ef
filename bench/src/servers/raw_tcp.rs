//! The ceiling: plain TCP echo, read into a buffer and write it back.
//!
//! The buffer is shared by every connection of the (single-threaded)
//! server, so an idle connection costs only its socket and its task: the
//! floor for the memory scenario as well as for CPU.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io::{self, ErrorKind};
use std::pin::Pin;
use std::task::Poll;

use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

thread_local! {
    static BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; 64 << 10]);
}

pub async fn echo(mut stream: TcpStream) {
    let _ = run(&mut stream).await;
}

async fn run(stream: &mut TcpStream) -> io::Result<()> {
    loop {
        // Read and write back from the shared buffer without awaiting in
        // between; only bytes the socket would not take are kept, per
        // connection, until it drains. `poll_read` (not `try_read`) lets
        // tokio skip the read that would only say "would block" after a
        // short read.
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
                let written = match stream.try_write(data) {
                    Ok(k) => k,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => 0,
                    Err(e) => return Poll::Ready(Err(e)),
                };
                Poll::Ready(Ok((written < data.len()).then(|| data[written..].to_vec())))
            })
        })
        .await?;
        if let Some(rest) = rest {
            stream.write_all(&rest).await?;
        }
    }
}
