//! Evbuffer fd I/O: readv into the tail, writev from the front, file segments with sendfile.
//! Not for Miri (real syscalls); see `buffer.rs` for the rest.

use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use revent::buffer::{BufferEnd, EolStyle, Evbuffer};
use revent::Error;

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

fn contents(buf: &Evbuffer) -> Vec<u8> {
    buf.peek(usize::MAX).unwrap().flatten().copied().collect()
}

fn would_block(e: &Error) -> bool {
    matches!(e, Error::Io(io) if io.kind() == ErrorKind::WouldBlock)
}

fn temp_file(data: &[u8]) -> File {
    let dir = std::env::temp_dir();
    let path = dir.join(format!(
        "revent-buffer-io-{}-{}",
        std::process::id(),
        data.len()
    ));
    let mut f = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    f.write_all(data).unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    f
}

#[test]
fn read_from_socket_grows_reads_and_keeps_bytes() {
    let (mut tx, rx) = UnixStream::pair().unwrap();
    rx.set_nonblocking(true).unwrap();
    let data = pattern(3 << 20);
    let sender = {
        let data = data.clone();
        std::thread::spawn(move || tx.write_all(&data).unwrap())
    };
    let mut buf = Evbuffer::new();
    let mut calls = 0;
    loop {
        match buf.read(&rx, usize::MAX) {
            Ok(0) => break,
            Ok(_) => calls += 1,
            Err(e) if would_block(&e) => std::thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    }
    sender.join().unwrap();
    assert_eq!(buf.len(), data.len());
    assert_eq!(contents(&buf), data);
    // Reads grow to hundreds of KiB: far fewer calls than libevent's 4096-byte reads would need.
    assert!(calls < data.len() / 4096 / 4, "{calls} reads");
}

#[test]
fn read_respects_max_and_reports_eof_and_would_block() {
    let (mut tx, rx) = UnixStream::pair().unwrap();
    rx.set_nonblocking(true).unwrap();
    let mut buf = Evbuffer::new();
    assert!(would_block(&buf.read(&rx, 100).unwrap_err()));
    tx.write_all(b"hello world\n").unwrap();
    assert_eq!(buf.read(&rx, 5).unwrap(), 5);
    assert_eq!(buf.read(&rx, 0).unwrap(), 0);
    assert_eq!(buf.read(&rx, 100).unwrap(), 7);
    assert_eq!(
        buf.readln(EolStyle::Lf).unwrap(),
        Some((b"hello world".to_vec(), 12))
    );
    drop(tx);
    assert_eq!(buf.read(&rx, 100).unwrap(), 0);
    buf.freeze(BufferEnd::End);
    assert!(buf.read(&rx, 100).is_err());
}

#[test]
fn read_into_a_partly_full_tail_uses_two_chunks() {
    let (mut tx, rx) = UnixStream::pair().unwrap();
    let mut buf = Evbuffer::new();
    buf.add(&[b'x'; 1000]).unwrap();
    let data = pattern(8000);
    tx.write_all(&data).unwrap();
    // One read fills the old tail chunk's free space and carries on into a second chunk.
    let n = buf.read(&rx, 8000).unwrap();
    assert!(n > 1024, "read only {n}");
    assert_eq!(buf.chunk_count(), 2);
    let mut total = n;
    while total < 8000 {
        total += buf.read(&rx, 8000 - total).unwrap();
    }
    let mut expect = vec![b'x'; 1000];
    expect.extend_from_slice(&data);
    assert_eq!(contents(&buf), expect);
}

#[test]
fn write_gathers_chunks_and_drains() {
    let (tx, mut rx) = UnixStream::pair().unwrap();
    let mut buf = Evbuffer::new();
    let mut expect = Vec::new();
    for i in 0..20u8 {
        let piece = vec![i; 100 + i as usize];
        buf.add_reference(piece.clone(), |_| {}).unwrap();
        expect.extend_from_slice(&piece);
    }
    buf.add(b"end").unwrap();
    expect.extend_from_slice(b"end");
    assert_eq!(buf.write_atmost(&tx, 150).unwrap(), 150);
    assert_eq!(buf.len(), expect.len() - 150);
    let rest = buf.len();
    assert_eq!(
        buf.write(&tx).unwrap(),
        rest,
        "one writev takes all leading chunks"
    );
    assert!(buf.is_empty());
    assert_eq!(buf.write(&tx).unwrap(), 0);
    let mut got = vec![0u8; expect.len()];
    rx.read_exact(&mut got).unwrap();
    assert_eq!(got, expect);
    buf.add(b"x").unwrap();
    buf.freeze(BufferEnd::Start);
    assert!(buf.write(&tx).is_err());
}

#[test]
fn write_to_a_full_socket_would_block() {
    let (tx, _rx) = UnixStream::pair().unwrap();
    tx.set_nonblocking(true).unwrap();
    let mut buf = Evbuffer::new();
    buf.add(&pattern(1 << 20)).unwrap();
    let mut sent = 0;
    let err = loop {
        match buf.write(&tx) {
            Ok(n) => sent += n,
            Err(e) => break e,
        }
    };
    assert!(would_block(&err));
    assert_eq!(buf.len(), (1 << 20) - sent);
}

#[test]
fn a_one_chunk_write_taken_in_part_keeps_the_rest_in_order() {
    // One chunk (the usual reply) goes out with a plain `write`; a socket that takes only part of
    // it leaves the rest at the front, in order.
    let (tx, mut rx) = UnixStream::pair().unwrap();
    tx.set_nonblocking(true).unwrap();
    socket2::SockRef::from(&tx)
        .set_send_buffer_size(16 << 10)
        .unwrap();
    let data = pattern(200 << 10);
    let mut buf = Evbuffer::new();
    buf.add(&data).unwrap();
    assert_eq!(buf.chunk_count(), 1);
    let mut got = Vec::new();
    let (mut sent, mut partial) = (0, false);
    while !buf.is_empty() {
        match buf.write(&tx) {
            Ok(n) => {
                partial |= n < data.len() - sent;
                sent += n;
                assert_eq!(buf.len(), data.len() - sent);
            }
            Err(e) => assert!(would_block(&e)),
        }
        let mut chunk = vec![0u8; 64 << 10];
        let k = rx.read(&mut chunk).unwrap();
        got.extend_from_slice(&chunk[..k]);
    }
    while got.len() < data.len() {
        let mut chunk = vec![0u8; 64 << 10];
        let k = rx.read(&mut chunk).unwrap();
        got.extend_from_slice(&chunk[..k]);
    }
    assert!(partial, "the socket took the chunk in parts");
    assert_eq!(got, data);
    // Emptied by the write, the buffer takes new bytes as before.
    assert_eq!((buf.len(), buf.chunk_count()), (0, 0));
    buf.add(b"next").unwrap();
    assert_eq!(buf.chunk_count(), 1);
    assert_eq!(buf.write(&tx).unwrap(), 4);
    let mut four = [0u8; 4];
    rx.read_exact(&mut four).unwrap();
    assert_eq!(&four, b"next");
}

#[test]
fn bulk_transfer_through_a_buffer() {
    // socketpair -> Evbuffer -> socketpair, 8 MiB, verifying every byte.
    let (mut src_tx, src_rx) = UnixStream::pair().unwrap();
    let (dst_tx, mut dst_rx) = UnixStream::pair().unwrap();
    let data = pattern(8 << 20);
    let sender = {
        let data = data.clone();
        std::thread::spawn(move || src_tx.write_all(&data).unwrap())
    };
    let receiver = std::thread::spawn(move || {
        let mut got = Vec::new();
        dst_rx.read_to_end(&mut got).unwrap();
        got
    });
    let mut buf = Evbuffer::new();
    loop {
        let n = buf.read(&src_rx, usize::MAX).unwrap();
        while !buf.is_empty() {
            buf.write(&dst_tx).unwrap();
        }
        if n == 0 {
            break;
        }
    }
    drop(dst_tx);
    sender.join().unwrap();
    assert_eq!(receiver.join().unwrap(), data);
}

#[test]
fn add_file_sends_with_sendfile() {
    let data = pattern(300_000);
    let (tx, mut rx) = UnixStream::pair().unwrap();
    let mut buf = Evbuffer::new();
    buf.add(b"head:").unwrap();
    buf.add_file(OwnedFd::from(temp_file(&data)), 1000, Some(200_000))
        .unwrap();
    buf.add_file(OwnedFd::from(temp_file(&data)), 299_990, None)
        .unwrap();
    buf.add(b":tail").unwrap();
    assert_eq!(buf.len(), 5 + 200_000 + 10 + 5);
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        rx.read_to_end(&mut got).unwrap();
        got
    });
    while !buf.is_empty() {
        buf.write(&tx).unwrap();
    }
    drop(tx);
    let got = reader.join().unwrap();
    let mut expect = b"head:".to_vec();
    expect.extend_from_slice(&data[1000..201_000]);
    expect.extend_from_slice(&data[299_990..]);
    expect.extend_from_slice(b":tail");
    assert_eq!(got.len(), expect.len());
    assert!(got == expect);
}

#[test]
fn add_file_to_a_regular_file_and_split_between_buffers() {
    let data = pattern(50_000);
    let mut a = Evbuffer::new();
    a.add_file(OwnedFd::from(temp_file(&data)), 0, None)
        .unwrap();
    // Split the segment: both halves refer to the same file, nothing is read yet.
    let mut b = Evbuffer::new();
    assert_eq!(a.remove_buffer(&mut b, 20_000).unwrap(), 20_000);
    let out = temp_file(b"");
    while !b.is_empty() {
        b.write(&out).unwrap();
    }
    while !a.is_empty() {
        a.write(&out).unwrap();
    }
    let mut got = Vec::new();
    (&out).seek(SeekFrom::Start(0)).unwrap();
    (&out).read_to_end(&mut got).unwrap();
    assert!(got == data);
}

#[test]
fn file_segments_are_read_when_looked_at() {
    let text = b"first line\nsecond line\r\nthird";
    let mut buf = Evbuffer::new();
    buf.add(b">").unwrap();
    buf.add_file(OwnedFd::from(temp_file(text)), 0, None)
        .unwrap();
    let found = buf.search(b"second", None).unwrap().unwrap();
    assert_eq!(found.position(), 12);
    assert_eq!(
        buf.readln(EolStyle::Lf).unwrap(),
        Some((b">first line".to_vec(), 12))
    );
    assert_eq!(
        buf.readln(EolStyle::CrlfStrict).unwrap(),
        Some((b"second line".to_vec(), 13))
    );
    assert_eq!(buf.pullup_all().unwrap(), b"third");
}

#[test]
fn add_file_rejects_bad_segments() {
    let data = pattern(100);
    let mut buf = Evbuffer::new();
    let f = || OwnedFd::from(temp_file(&data));
    assert!(buf.add_file(f(), 101, None).is_err());
    assert!(buf.add_file(f(), 50, Some(51)).is_err());
    assert!(buf.add_file(f(), u64::MAX, Some(2)).is_err());
    assert!(buf.add_file(f(), 0, Some(u64::MAX)).is_err());
    let (sock, _other) = UnixStream::pair().unwrap();
    assert!(buf.add_file(OwnedFd::from(sock), 0, Some(1)).is_err());
    buf.add_file(f(), 100, None).unwrap();
    assert!(buf.is_empty());
    buf.freeze(BufferEnd::End);
    assert!(buf.add_file(f(), 0, None).is_err());
    assert!(buf.is_empty());
}

#[test]
fn add_file_falls_back_to_read_and_copy() {
    // sendfile refuses an O_APPEND destination (EINVAL): the segment is read and written instead.
    let data = pattern(150_000);
    let mut buf = Evbuffer::new();
    buf.add_file(OwnedFd::from(temp_file(&data)), 7, None)
        .unwrap();
    let dir = std::env::temp_dir();
    let path = dir.join(format!("revent-buffer-io-append-{}", std::process::id()));
    let out = File::options()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    drop(out);
    let out = File::options().append(true).read(true).open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let mut writes = 0;
    while !buf.is_empty() {
        buf.write(&out).unwrap();
        writes += 1;
    }
    assert!(writes >= 2, "copied in bounded steps");
    let mut got = Vec::new();
    (&out).seek(SeekFrom::Start(0)).unwrap();
    (&out).read_to_end(&mut got).unwrap();
    assert!(got == data[7..]);
}

mod file_segments_model {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        AddFile(usize, usize),
        Add(Vec<u8>),
        Drain(usize),
        Readln,
        Search(Vec<u8>),
        Pullup(usize),
        MoveOut(usize),
        MoveBack,
        Write(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0usize..3000, 0usize..3000).prop_map(|(o, l)| Op::AddFile(o, l)),
            prop::collection::vec(prop_oneof![Just(b'\n'), Just(b'a'), any::<u8>()], 0..50)
                .prop_map(Op::Add),
            (0usize..2000).prop_map(Op::Drain),
            Just(Op::Readln),
            prop::collection::vec(prop_oneof![Just(b'\n'), Just(b'a'), any::<u8>()], 1..4)
                .prop_map(Op::Search),
            (0usize..2000).prop_map(Op::Pullup),
            (0usize..2000).prop_map(Op::MoveOut),
            Just(Op::MoveBack),
            (0usize..5000).prop_map(Op::Write),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

        /// File segments mixed with memory, split between buffers, partly read into memory and partly
        /// sent: contents always agree with a Vec model, and what is written arrives intact.
        #[test]
        fn file_segments_agree_with_a_model(ops in prop::collection::vec(op(), 1..40)) {
            let text: Vec<u8> = (0..3000u32).map(|i| if i % 37 == 0 { b'\n' } else { b'a' + (i % 26) as u8 }).collect();
            let (tx, mut rx) = UnixStream::pair().unwrap();
            let mut a = Evbuffer::new();
            let mut b = Evbuffer::new();
            let (mut ma, mut mb): (Vec<u8>, Vec<u8>) = (Vec::new(), Vec::new());
            for op in &ops {
                match op {
                    Op::AddFile(off, len) => {
                        let f = OwnedFd::from(temp_file(&text));
                        let r = a.add_file(f, *off as u64, Some(*len as u64));
                        prop_assert_eq!(r.is_ok(), off + len <= text.len());
                        if r.is_ok() {
                            ma.extend_from_slice(&text[*off..off + len]);
                        }
                    }
                    Op::Add(d) => {
                        a.add(d).unwrap();
                        ma.extend_from_slice(d);
                    }
                    Op::Drain(n) => {
                        let k = a.drain(*n).unwrap();
                        ma.drain(..k);
                    }
                    Op::Readln => match ma.iter().position(|&c| c == b'\n') {
                        None => prop_assert_eq!(a.readln(EolStyle::Lf).unwrap(), None),
                        Some(p) => {
                            prop_assert_eq!(a.readln(EolStyle::Lf).unwrap(), Some((ma[..p].to_vec(), p + 1)));
                            ma.drain(..=p);
                        }
                    },
                    Op::Search(n) => {
                        let got = a.search(n, None).unwrap().map(|p| p.position());
                        prop_assert_eq!(got, ma.windows(n.len()).position(|w| w == &n[..]));
                    }
                    Op::Pullup(n) => match a.pullup(*n) {
                        Ok(s) => prop_assert_eq!(s, &ma[..*n]),
                        Err(_) => prop_assert!(*n > ma.len()),
                    },
                    Op::MoveOut(n) => {
                        let k = a.remove_buffer(&mut b, *n).unwrap();
                        mb.extend(ma.drain(..k));
                    }
                    Op::MoveBack => {
                        a.prepend_buffer(&mut b).unwrap();
                        mb.extend_from_slice(&ma);
                        ma = std::mem::take(&mut mb);
                    }
                    Op::Write(n) => {
                        let k = a.write_atmost(&tx, *n).unwrap();
                        prop_assert!(k <= *n);
                        let mut got = vec![0u8; k];
                        rx.read_exact(&mut got).unwrap();
                        prop_assert_eq!(&got[..], &ma[..k]);
                        ma.drain(..k);
                    }
                }
                // Lengths only here: looking at the contents would read every segment into memory,
                // and the writes should meet unread segments too.
                prop_assert_eq!(a.len(), ma.len());
                prop_assert_eq!(b.len(), mb.len());
            }
            prop_assert_eq!(contents(&b), mb);
            prop_assert_eq!(contents(&a), ma);
        }
    }
}
