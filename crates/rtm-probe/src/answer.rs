//! One HTTP/1.1 exchange on a connection: the request written, the answer
//! read — its head whole, its body by the message's own framing
//! (RFC 9112 §6.3), at most [`MAX_BODY`] of it, and thrown away.
//!
//! The bytes live in one buffer for the length of the exchange; a kept
//! connection holds none.

use std::io;

use httparse::Status;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How much of an answer's body is read. The rest is not needed; an answer
/// whose body is longer is judged on its status and its connection is not
/// kept.
pub const MAX_BODY: u64 = 64 * 1024;

/// Largest answer head (status line and headers), and largest trailer
/// section, accepted: an engine's health answer is a few hundred bytes.
pub const MAX_HEAD: usize = 16 * 1024;

/// Most headers in one answer head.
const MAX_HEADERS: usize = 64;

/// Interim (1xx) answers skipped before the final one.
const MAX_INTERIM: usize = 8;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 2048;

/// What an exchange got: the final answer's status, whether its body came
/// whole (up to [`MAX_BODY`]), and the connection when it can carry the
/// next request.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    /// The answer's reason phrase, printable ASCII, at most 40 characters.
    pub reason: String,
    /// `Err` when the body was cut short or malformed.
    pub body: Result<(), String>,
    pub reusable: Option<TcpStream>,
}

/// Why an exchange has no answer.
#[derive(Debug)]
pub(crate) enum Failed {
    /// The connection ended (closed, reset, or the write failed) before a
    /// single byte of an answer: on a kept connection, the engine had
    /// closed it while idle, and the request may be sent again on a new one.
    Closed(String),
    /// Anything else: an I/O error mid-answer, or an answer that is not
    /// HTTP/1.x.
    Broken(String),
}

/// How the body of an answer ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    /// Until the engine closes the connection (no length given).
    UntilClose,
}

/// The parts of an answer head that matter here.
#[derive(Debug)]
struct Head {
    status: u16,
    reason: String,
    framing: Framing,
    /// The connection ends after this answer (`Connection: close`, an
    /// HTTP/1.0 answer, or a body that runs until close).
    closes: bool,
}

/// Sends `request` on `stream` and reads the answer.
pub(crate) async fn exchange(mut stream: TcpStream, request: &[u8]) -> Result<Answer, Failed> {
    if let Err(e) = stream.write_all(request).await {
        return Err(Failed::Closed(e.to_string()));
    }
    let mut reader = Reader {
        stream,
        buf: Vec::new(),
        at: 0,
        received: 0,
    };
    let head = reader.final_head().await?;
    let body = match head.framing {
        Framing::Length(n) => reader.skip(n.min(MAX_BODY)).await.map(|()| n <= MAX_BODY),
        Framing::Chunked => reader.chunked().await,
        Framing::UntilClose => reader.until_close().await.map(|()| false),
    };
    let whole = matches!(body, Ok(true));
    let reusable =
        (whole && !head.closes && reader.available().is_empty()).then_some(reader.stream);
    Ok(Answer {
        status: head.status,
        reason: head.reason,
        body: body.map(|_| ()),
        reusable,
    })
}

/// The connection and the bytes read from it but not yet consumed.
#[derive(Debug)]
struct Reader {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    at: usize,
    /// Bytes read so far in this exchange.
    received: usize,
}

impl Reader {
    fn available(&self) -> &[u8] {
        &self.buf[self.at..]
    }

    fn consume(&mut self, n: usize) {
        self.at += n;
        if self.at == self.buf.len() {
            self.buf.clear();
            self.at = 0;
        }
    }

    /// Reads more from the socket; `false` when the engine closed it.
    async fn fill(&mut self) -> io::Result<bool> {
        if self.at > 0 {
            self.buf.drain(..self.at);
            self.at = 0;
        }
        self.buf.reserve(READ_CHUNK);
        let n = self.stream.read_buf(&mut self.buf).await?;
        self.received += n;
        Ok(n > 0)
    }

    /// [`Reader::fill`], where the end of the connection is a broken
    /// answer (`what` says where it ended).
    async fn more(&mut self, what: &str) -> Result<(), String> {
        match self.fill().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(format!("the connection closed {what}")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The first non-interim answer head; interim (1xx) answers are
    /// skipped.
    async fn final_head(&mut self) -> Result<Head, Failed> {
        for _ in 0..=MAX_INTERIM {
            let (head, len) = self.head().await?;
            self.consume(len);
            match head.status {
                101 => {
                    return Err(Failed::Broken(
                        "the engine switched protocols (HTTP 101)".into(),
                    ))
                }
                100..=199 => continue,
                _ => return Ok(head),
            }
        }
        Err(Failed::Broken(format!(
            "more than {MAX_INTERIM} interim (1xx) answers"
        )))
    }

    /// Reads until the unconsumed bytes start with a whole answer head;
    /// returns it and its length.
    async fn head(&mut self) -> Result<(Head, usize), Failed> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(self.available()) {
                Ok(Status::Complete(len)) => {
                    return Ok((Head::of(&response).map_err(Failed::Broken)?, len))
                }
                Ok(Status::Partial) if self.available().len() >= MAX_HEAD => {
                    return Err(Failed::Broken(format!(
                        "the answer's head is larger than {} KiB",
                        MAX_HEAD / 1024
                    )))
                }
                Ok(Status::Partial) => {}
                Err(e) => return Err(Failed::Broken(format!("not an HTTP/1.x answer: {e}"))),
            }
            let nothing_yet = self.received == 0;
            match self.fill().await {
                Ok(true) => {}
                Ok(false) if nothing_yet => {
                    return Err(Failed::Closed(
                        "the connection closed before an answer".into(),
                    ))
                }
                Ok(false) => {
                    return Err(Failed::Broken(
                        "the connection closed inside the answer's head".into(),
                    ))
                }
                Err(e) if nothing_yet => return Err(Failed::Closed(e.to_string())),
                Err(e) => return Err(Failed::Broken(e.to_string())),
            }
        }
    }

    /// Consumes `n` body bytes.
    async fn skip(&mut self, mut n: u64) -> Result<(), String> {
        loop {
            let take = self
                .available()
                .len()
                .min(usize::try_from(n).unwrap_or(usize::MAX));
            self.consume(take);
            n -= take as u64;
            if n == 0 {
                return Ok(());
            }
            self.more(&format!("{n} bytes before the end of the body"))
                .await?;
        }
    }

    /// Consumes a chunked body and its trailers; `Ok(false)` when it was
    /// longer than [`MAX_BODY`] and reading stopped there.
    async fn chunked(&mut self) -> Result<bool, String> {
        let mut left = MAX_BODY;
        loop {
            let (line, size) = loop {
                match httparse::parse_chunk_size(self.available()) {
                    Ok(Status::Complete(found)) => break found,
                    Ok(Status::Partial) if self.available().len() > 1024 => {
                        return Err("a chunk-size line is longer than 1 KiB".into())
                    }
                    Ok(Status::Partial) => self.more("inside the chunked body").await?,
                    Err(_) => return Err("invalid chunk size in the chunked body".into()),
                }
            };
            self.consume(line);
            if size == 0 {
                return self.trailers().await.map(|()| true);
            }
            if size > left {
                self.skip(left).await?;
                return Ok(false);
            }
            self.skip(size).await?;
            left -= size;
            while self.available().len() < 2 {
                self.more("inside the chunked body").await?;
            }
            if &self.available()[..2] != b"\r\n" {
                return Err("a chunk is not followed by CRLF".into());
            }
            self.consume(2);
        }
    }

    /// Consumes the trailer section of a chunked body, up to its empty line.
    async fn trailers(&mut self) -> Result<(), String> {
        let mut seen = 0;
        loop {
            match self.available().windows(2).position(|w| w == b"\r\n") {
                Some(0) => {
                    self.consume(2);
                    return Ok(());
                }
                Some(i) => {
                    seen += i + 2;
                    self.consume(i + 2);
                }
                None => self.more("inside the chunked body's trailers").await?,
            }
            if seen + self.available().len() > MAX_HEAD {
                return Err(format!(
                    "the chunked body's trailers are larger than {} KiB",
                    MAX_HEAD / 1024
                ));
            }
        }
    }

    /// Consumes a body that ends when the connection does, up to
    /// [`MAX_BODY`].
    async fn until_close(&mut self) -> Result<(), String> {
        let mut left = MAX_BODY;
        loop {
            let take = self
                .available()
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            self.consume(take);
            left -= take as u64;
            if left == 0 {
                return Ok(());
            }
            match self.fill().await {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

impl Head {
    /// Reads status, reason and framing from a parsed head.
    fn of(response: &httparse::Response<'_, '_>) -> Result<Head, String> {
        let status = response.code.unwrap_or_default();
        let reason: String = response
            .reason
            .unwrap_or_default()
            .chars()
            .filter(|c| c.is_ascii_graphic() || *c == ' ')
            .take(40)
            .collect();
        let mut closes = response.version != Some(1);
        let mut chunked = None;
        let mut length: Option<u64> = None;
        for header in response.headers.iter() {
            let name = header.name;
            let tokens = || {
                header
                    .value
                    .split(|b| *b == b',')
                    .map(|t| t.trim_ascii())
                    .filter(|t| !t.is_empty())
            };
            if name.eq_ignore_ascii_case("connection") {
                closes |= tokens().any(|t| t.eq_ignore_ascii_case(b"close"));
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                // The last coding of the last header decides (RFC 9112 §6.3).
                chunked = Some(
                    tokens()
                        .next_back()
                        .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked")),
                );
            } else if name.eq_ignore_ascii_case("content-length") {
                for token in tokens() {
                    let n = std::str::from_utf8(token)
                        .ok()
                        .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
                        .and_then(|s| s.parse::<u64>().ok())
                        .ok_or("invalid Content-Length in the answer")?;
                    if length.is_some_and(|l| l != n) {
                        return Err("conflicting Content-Length values in the answer".into());
                    }
                    length = Some(n);
                }
            }
        }
        let framing = match (status, chunked, length) {
            (100..=199 | 204 | 304, _, _) => Framing::Length(0),
            (_, Some(true), _) => Framing::Chunked,
            (_, Some(false), _) => Framing::UntilClose,
            (_, None, Some(n)) => Framing::Length(n),
            (_, None, None) => Framing::UntilClose,
        };
        // A length given beside a transfer coding is not to be trusted for
        // the next message (RFC 9112 §6.1); a body until close ends it.
        closes |= framing == Framing::UntilClose || (chunked.is_some() && length.is_some());
        Ok(Head {
            status,
            reason,
            framing,
            closes,
        })
    }
}
