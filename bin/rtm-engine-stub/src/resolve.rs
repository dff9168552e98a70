//! `rtm-engine-stub resolve <name> [server]`: a minimal DNS A lookup, so a
//! test can ask Docker's embedded DNS (from inside the engines' network)
//! what a name resolves to, with no other image (the stub image is
//! `FROM scratch`: no shell, no `nslookup`).
//!
//! Sends one recursive A query over UDP to `server` (default
//! `127.0.0.11:53`, Docker's embedded DNS on user-defined networks) and
//! prints every IPv4 address of the answer, one per line, sorted. Exit
//! codes: 0 with at least one address; 1 when the name does not resolve
//! (NXDOMAIN or no A record); 2 on bad usage or a DNS/network error.
//! Docker answers with every container that has the name in one response
//! (in rotating order), so one query shows a shared name.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::Duration;

const DEFAULT_SERVER: &str = "127.0.0.11:53";
const TIMEOUT: Duration = Duration::from_secs(3);
const TRIES: u32 = 3;
const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;

/// Runs the `resolve` command with its arguments (after `resolve`).
pub fn main(args: &[String]) -> ExitCode {
    let Some(name) = args.first() else {
        eprintln!("usage: rtm-engine-stub resolve <name> [server:port]");
        return ExitCode::from(2);
    };
    let server = args.get(1).map_or(DEFAULT_SERVER, String::as_str);
    let server: SocketAddr = match server.parse() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("resolve: bad server {server:?}: {e}");
            return ExitCode::from(2);
        }
    };
    match lookup(name, server) {
        Ok(addrs) if addrs.is_empty() => {
            eprintln!("resolve: {name}: no address");
            ExitCode::from(1)
        }
        Ok(addrs) => {
            for a in addrs {
                println!("{a}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("resolve: {name}: {e}");
            ExitCode::from(2)
        }
    }
}

/// The sorted, deduplicated A records of `name`; empty on NXDOMAIN.
fn lookup(name: &str, server: SocketAddr) -> Result<Vec<Ipv4Addr>, String> {
    let socket = UdpSocket::bind("0.0.0.0:0").map_err(|e| format!("bind: {e}"))?;
    socket
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let id = (std::process::id() & 0xffff) as u16;
    let query = encode_query(id, name)?;
    let mut buf = [0u8; 4096];
    let mut last = String::from("no answer");
    // UDP may drop a datagram: retry a few times, each bounded.
    for _ in 0..TRIES {
        socket
            .send_to(&query, server)
            .map_err(|e| format!("send: {e}"))?;
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => match decode_answer(id, &buf[..n]) {
                Ok(mut addrs) => {
                    addrs.sort();
                    addrs.dedup();
                    return Ok(addrs);
                }
                Err(e) => last = e,
            },
            Err(e) => last = format!("receive: {e}"),
        }
    }
    Err(last)
}

fn encode_query(id: u16, name: &str) -> Result<Vec<u8>, String> {
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&0x0100u16.to_be_bytes()); // recursion desired
    q.extend_from_slice(&1u16.to_be_bytes()); // one question
    q.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // no answers/authority/additional
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("bad name {name:?}"));
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&TYPE_A.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(q)
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, String> {
    b.get(at..at + 2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
        .ok_or_else(|| "truncated answer".to_owned())
}

/// Skips a (possibly compressed) name starting at `at`; returns the offset
/// just after it.
fn skip_name(b: &[u8], mut at: usize) -> Result<usize, String> {
    loop {
        let len = *b.get(at).ok_or("truncated name")?;
        match len {
            0 => return Ok(at + 1),
            l if l & 0xc0 == 0xc0 => return Ok(at + 2), // pointer ends the name
            l => at += 1 + l as usize,
        }
    }
}

fn decode_answer(id: u16, b: &[u8]) -> Result<Vec<Ipv4Addr>, String> {
    if u16_at(b, 0)? != id {
        return Err("answer to another query".into());
    }
    let flags = u16_at(b, 2)?;
    if flags & 0x8000 == 0 {
        return Err("not an answer".into());
    }
    match flags & 0x000f {
        0 => {}
        3 => return Ok(Vec::new()), // NXDOMAIN
        rcode => return Err(format!("server answered rcode {rcode}")),
    }
    let (qd, an) = (u16_at(b, 4)?, u16_at(b, 6)?);
    let mut at = 12;
    for _ in 0..qd {
        at = skip_name(b, at)? + 4;
    }
    let mut out = Vec::new();
    for _ in 0..an {
        at = skip_name(b, at)?;
        let (rtype, class, len) = (u16_at(b, at)?, u16_at(b, at + 2)?, u16_at(b, at + 8)?);
        let data = b
            .get(at + 10..at + 10 + len as usize)
            .ok_or("truncated record")?;
        if rtype == TYPE_A && class == CLASS_IN && data.len() == 4 {
            out.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        at += 10 + len as usize;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_round_trips_through_a_hand_made_answer() {
        let q = encode_query(7, "rtm-cx").unwrap();
        assert_eq!(&q[12..20], b"\x06rtm-cx\x00");
        // The answer: the question echoed, then two A records whose names
        // point back at it (0xc00c), as Docker sends them.
        let mut a = q.clone();
        a[2] = 0x81;
        a[3] = 0x80;
        a[7] = 2;
        for ip in [[172, 20, 0, 9], [172, 20, 0, 3]] {
            a.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 2, 88, 0, 4]);
            a.extend_from_slice(&ip);
        }
        let mut got = decode_answer(7, &a).unwrap();
        got.sort();
        assert_eq!(
            got,
            vec![Ipv4Addr::new(172, 20, 0, 3), Ipv4Addr::new(172, 20, 0, 9)]
        );
        // NXDOMAIN is "no address", another id is refused.
        let mut nx = q.clone();
        nx[2] = 0x81;
        nx[3] = 0x83;
        assert!(decode_answer(7, &nx).unwrap().is_empty());
        assert!(decode_answer(8, &a).is_err());
        assert!(encode_query(1, "a..b").is_err());
    }
}
