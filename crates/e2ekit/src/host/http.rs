//! The one tiny HTTP/1.1 responder e2ekit needs for its own local endpoints (the interactive
//! "finish" URL, monitoring's local metrics): read a request head, answer, close.
//!
//! The head is read in full (up to [`MAX_HEAD`]) before answering: a browser with cookies
//! sends kilobytes, and closing with unread input makes the kernel reset the connection, so
//! the person would see an error page instead of the answer.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest request head read; longer ones are answered after that much.
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// How long a client may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads a request head and returns its path without the query (`/metrics`), or `None`
/// when the client sent nothing usable in time.
pub(crate) async fn read_request_path(sock: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let n = match tokio::time::timeout(HEAD_TIMEOUT, sock.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(e),
        };
        head.extend_from_slice(&buf[..n]);
    }
    if head.is_empty() {
        return Ok(None);
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("/");
    Ok(Some(path.split('?').next().unwrap_or(path).to_string()))
}

/// Writes a complete response (`status` like `"200 OK"`) and closes the connection.
pub(crate) async fn respond(
    sock: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(reply.as_bytes()).await?;
    sock.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn a_large_request_head_is_read_in_full_and_answered() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.expect("accept");
            let path = read_request_path(&mut sock).await.expect("read");
            respond(&mut sock, "200 OK", "text/plain", "done\n")
                .await
                .expect("answer");
            path
        });
        let mut client = TcpStream::connect(addr).await.expect("connect");
        // 8 KiB of cookies, as a browser with history on 127.0.0.1 sends.
        let request = format!(
            "GET /finish?x=1 HTTP/1.1\r\nHost: x\r\nCookie: {}\r\n\r\n",
            "a".repeat(8192)
        );
        client.write_all(request.as_bytes()).await.expect("send");
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.expect("no reset");
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(answer.ends_with("done\n"), "{answer}");
        assert_eq!(server.await.expect("server").as_deref(), Some("/finish"));
    }
}
