//! Bufferevent pairs (same rules as sockets, in memory) and filters (a line-uppercasing filter and a
//! deflate/inflate pair of filters over a pair and over a socketpair).

mod bev_common;

use bev_common::*;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use revent::{
    BevFlags, BevOptions, BufferEvent, Evbuffer, EventBase, FilterFn, FilterResult, FlushMode,
    Method, What,
};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

fn contents(buf: &Evbuffer) -> Vec<u8> {
    buf.peek(usize::MAX).unwrap().flatten().copied().collect()
}

// ---- pairs ----

#[test]
fn pair_moves_data_both_ways() {
    for m in backends() {
        let mut base = base(m);
        let (a, b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
        assert_eq!(a.partner(&base).unwrap(), Some(b));
        assert_eq!(b.partner(&base).unwrap(), Some(a));
        assert!(a.fd(&base).is_err(), "a pair has no socket");
        let got = log();
        for (me, name) in [(a, "a"), (b, "b")] {
            let g = got.clone();
            me.set_read_cb(&mut base, move |base, bev| {
                let v = drain_input(base, bev);
                push(&g, format!("{name} {}", String::from_utf8_lossy(&v)));
            })
            .unwrap();
            me.enable(&mut base, What::READ).unwrap();
        }
        a.write(&mut base, b"to b").unwrap();
        b.write(&mut base, b"to a").unwrap();
        run_until(&mut base, LIMIT, |_| got.borrow().len() == 2);
        let mut e = entries(&got);
        e.sort();
        assert_eq!(e, ["a to a", "b to b"]);
        // Without READ enabled on the receiver, nothing moves.
        b.disable(&mut base, What::READ).unwrap();
        a.write(&mut base, b"held").unwrap();
        run_for(&mut base, Duration::from_millis(30));
        assert_eq!(output_len(&mut base, a), 4);
        b.enable(&mut base, What::READ).unwrap();
        run_until(&mut base, LIMIT, |_| got.borrow().len() == 3);
        assert_eq!(entries(&got)[2], "b held");
        a.free(&mut base).unwrap();
        b.free(&mut base).unwrap();
    }
}

#[test]
fn pair_read_watermarks() {
    let mut base = EventBase::new().unwrap();
    let (a, b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    b.set_read_cb(&mut base, move |base, bev| {
        s.borrow_mut().push(bev.input(base).unwrap().len())
    })
    .unwrap();
    b.set_watermark(&mut base, What::READ, 10, 100).unwrap();
    b.enable(&mut base, What::READ).unwrap();
    a.write(&mut base, b"12345").unwrap();
    run_until(&mut base, LIMIT, |b2| input_len(b2, b) == 5);
    run_for(&mut base, Duration::from_millis(20));
    assert!(seen.borrow().is_empty(), "read cb below the low watermark");
    a.write(&mut base, b"67890").unwrap();
    run_until(&mut base, LIMIT, |_| !seen.borrow().is_empty());
    assert_eq!(*seen.borrow(), vec![10]);

    // High watermark: b's input stops at 100, the rest waits in a's output.
    let data = pattern(1000);
    a.write(&mut base, &data).unwrap();
    run_for(&mut base, Duration::from_millis(30));
    assert_eq!(input_len(&mut base, b), 100);
    assert_eq!(output_len(&mut base, a), 910);
    // Draining b resumes the transfer.
    let mut got = Vec::new();
    while got.len() < 1010 {
        got.extend(drain_input(&mut base, b));
        if got.len() < 1010 {
            run_until(&mut base, LIMIT, |bb| input_len(bb, b) > 0);
            assert!(input_len(&mut base, b) <= 100);
        }
    }
    let mut want = b"1234567890".to_vec();
    want.extend(&data);
    assert_eq!(got, want);
}

#[test]
fn pair_write_low_watermark() {
    let mut base = EventBase::new().unwrap();
    let (a, b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
    b.set_watermark(&mut base, What::READ, 0, 1000).unwrap();
    b.enable(&mut base, What::READ).unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    a.set_write_cb(&mut base, move |base, bev| {
        s.borrow_mut().push(bev.output(base).unwrap().len())
    })
    .unwrap();
    a.set_watermark(&mut base, What::WRITE, 500, 0).unwrap();
    a.write(&mut base, &pattern(3000)).unwrap();
    run_for(&mut base, Duration::from_millis(30));
    assert!(seen.borrow().is_empty(), "write cb with 2000 bytes left");
    assert_eq!(output_len(&mut base, a), 2000);
    let mut total = 0;
    while total < 3000 {
        total += drain_input(&mut base, b).len();
        run_until(&mut base, LIMIT, |bb| input_len(bb, b) > 0 || total == 3000);
    }
    assert!(!seen.borrow().is_empty());
    for &len in seen.borrow().iter() {
        assert!(len <= 500, "write cb with {len} bytes left");
    }
}

#[test]
fn pair_flush_finished_gives_partner_eof() {
    let mut base = EventBase::new().unwrap();
    let (a, b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
    let events = record_events(&mut base, b);
    let got = record_input(&mut base, b);
    b.enable(&mut base, What::READ).unwrap();
    a.write(&mut base, b"final").unwrap();
    a.flush(&mut base, What::WRITE, FlushMode::Finished)
        .unwrap();
    run_until(&mut base, LIMIT, |_| !events.borrow().is_empty());
    assert_eq!(*got.borrow(), b"final");
    assert!(
        events.borrow()[0].contains(BevFlags::EOF),
        "{:?}",
        events.borrow()
    );
}

#[test]
fn pair_flush_moves_data_past_watermarks() {
    let mut base = EventBase::new().unwrap();
    let (a, b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
    b.set_watermark(&mut base, What::READ, 0, 10).unwrap();
    b.enable(&mut base, What::READ).unwrap();
    a.write(&mut base, &pattern(100)).unwrap();
    assert!(a.flush(&mut base, What::WRITE, FlushMode::Flush).unwrap());
    assert_eq!(input_len(&mut base, b), 100);
    assert_eq!(output_len(&mut base, a), 0);
}

#[test]
fn freeing_one_side_gives_the_other_eof() {
    for m in backends() {
        let mut base = base(m);
        let (a, b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
        let events = record_events(&mut base, b);
        b.enable(&mut base, What::READ).unwrap();
        a.free(&mut base).unwrap();
        run_until(&mut base, LIMIT, |_| !events.borrow().is_empty());
        assert_eq!(*events.borrow(), vec![BevFlags::EOF | BevFlags::READING]);
        assert_eq!(b.partner(&base).unwrap(), None);
        // Writing into a pair without partner goes nowhere, harmlessly.
        b.write(&mut base, b"lost").unwrap();
        run_for(&mut base, Duration::from_millis(10));
        b.free(&mut base).unwrap();
    }
}

#[test]
fn data_written_just_before_free_reaches_the_partner() {
    let mut base = EventBase::new().unwrap();
    let (a, b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
    let order = log();
    let o = order.clone();
    b.set_read_cb(&mut base, move |base, bev| {
        let v = drain_input(base, bev);
        push(&o, format!("read {}", String::from_utf8_lossy(&v)));
    })
    .unwrap();
    let o = order.clone();
    b.set_event_cb(&mut base, move |_, _, f| push(&o, format!("event {f:?}")))
        .unwrap();
    b.enable(&mut base, What::READ).unwrap();
    a.write(&mut base, b"goodbye").unwrap();
    a.free(&mut base).unwrap();
    run_until(&mut base, LIMIT, |_| order.borrow().len() >= 2);
    assert_eq!(
        entries(&order),
        ["read goodbye", "event BevFlags(READING | EOF)"]
    );
}

#[test]
fn pair_deferred_callbacks_run_from_the_loop() {
    let mut base = EventBase::new().unwrap();
    let (a, b) = BufferEvent::pair(&mut base, BevOptions::DEFER_CALLBACKS).unwrap();
    let in_api = Rc::new(Cell::new(false));
    let order = log();
    let (o, ia) = (order.clone(), in_api.clone());
    b.set_read_cb(&mut base, move |base, bev| {
        assert!(!ia.get(), "read cb inside an API call");
        let v = drain_input(base, bev);
        push(&o, format!("b read {}", v.len()));
    })
    .unwrap();
    let (o, ia) = (order.clone(), in_api.clone());
    a.set_write_cb(&mut base, move |_, _| {
        assert!(!ia.get(), "write cb inside an API call");
        push(&o, "a write");
    })
    .unwrap();
    let (o, ia) = (order.clone(), in_api.clone());
    b.set_event_cb(&mut base, move |_, _, f| {
        assert!(!ia.get(), "event cb inside an API call");
        push(&o, format!("b event {f:?}"));
    })
    .unwrap();
    in_api.set(true);
    a.write(&mut base, b"xyz").unwrap();
    b.enable(&mut base, What::READ).unwrap();
    a.flush(&mut base, What::WRITE, FlushMode::Finished)
        .unwrap();
    in_api.set(false);
    assert!(order.borrow().is_empty());
    run_until(&mut base, LIMIT, |_| order.borrow().len() >= 3);
    let e = entries(&order);
    let pos = |s: &str| {
        e.iter()
            .position(|x| x == s)
            .unwrap_or_else(|| panic!("{s} in {e:?}"))
    };
    assert!(
        pos("b read 3") < pos("b event BevFlags(READING | EOF)"),
        "{e:?}"
    );
    pos("a write");
}

// ---- timeouts (libevent's generic ones) ----

/// Runs until the first event callback and checks that it was `flags`, alone.
fn expect_only_event(
    base: &mut EventBase,
    events: &Rc<RefCell<Vec<BevFlags>>>,
    flags: BevFlags,
    m: Method,
) {
    run_until(base, LIMIT, |_| !events.borrow().is_empty());
    assert_eq!(*events.borrow(), vec![flags], "{m:?}");
}

/// `reader` has a read timeout of about 400 ms: a byte from `writer` every 20 ms for twice that
/// long must not let it fire (each arrival starts it over); silence then must.
fn trickle_then_read_timeout(
    base: &mut EventBase,
    writer: BufferEvent,
    events: &Rc<RefCell<Vec<BevFlags>>>,
    got: &Rc<RefCell<Vec<u8>>>,
    m: Method,
) {
    for i in 0..40u8 {
        writer.write(base, &[i]).unwrap();
        run_for(base, Duration::from_millis(20));
    }
    assert!(events.borrow().is_empty(), "{m:?}: {:?}", events.borrow());
    assert_eq!(got.borrow().len(), 40, "{m:?}");
    expect_only_event(base, events, BevFlags::TIMEOUT | BevFlags::READING, m);
}

/// A pair's read timeout fires when nothing arrives for that long, never while data keeps coming
/// (each arrival starts it over), once, and disables reading.
#[test]
fn pair_read_timeout_fires_only_when_nothing_arrives() {
    for m in backends() {
        let mut base = base(m);
        let (a, b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
        let events = record_events(&mut base, a);
        let got = record_input(&mut base, a);
        a.set_timeouts(&mut base, Some(Duration::from_millis(400)), None)
            .unwrap();
        a.enable(&mut base, What::READ).unwrap();
        trickle_then_read_timeout(&mut base, b, &events, &got, m);
        assert!(!a.enabled(&base).unwrap().contains(What::READ), "{m:?}");
        run_for(&mut base, Duration::from_millis(500));
        assert_eq!(events.borrow().len(), 1, "{m:?}: fired again");
        a.free(&mut base).unwrap();
        b.free(&mut base).unwrap();
    }
}

/// A pair's write timeout runs only while output waits (here: the partner does not read), and
/// clearing the timeouts stops a running one.
#[test]
fn pair_write_timeout_runs_while_output_waits() {
    for m in backends() {
        let mut base = base(m);
        let (a, b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
        let events = record_events(&mut base, a);
        a.set_timeouts(&mut base, None, Some(Duration::from_millis(100)))
            .unwrap();
        run_for(&mut base, Duration::from_millis(300));
        assert!(
            events.borrow().is_empty(),
            "{m:?}: nothing to write, no timeout"
        );
        a.write(&mut base, b"stuck").unwrap();
        expect_only_event(&mut base, &events, BevFlags::TIMEOUT | BevFlags::WRITING, m);
        assert_eq!(output_len(&mut base, a), 5, "{m:?}: the output is kept");

        // Writing again, and the timeouts cleared before it expires: nothing fires.
        a.enable(&mut base, What::WRITE).unwrap();
        a.set_timeouts(&mut base, None, Some(Duration::from_millis(100)))
            .unwrap();
        run_for(&mut base, Duration::from_millis(20));
        a.set_timeouts(&mut base, None, None).unwrap();
        run_for(&mut base, Duration::from_millis(300));
        assert_eq!(events.borrow().len(), 1, "{m:?}: {:?}", events.borrow());
        // Once the partner reads, the output drains.
        b.enable(&mut base, What::READ).unwrap();
        run_until(&mut base, LIMIT, |b| output_len(b, a) == 0);
        a.free(&mut base).unwrap();
        b.free(&mut base).unwrap();
    }
}

/// A filter's read timeout is its own (the underlying bufferevent has none): it fires when the
/// filter gets no data, and data through the filter starts it over.
#[test]
fn filter_read_timeout() {
    for m in backends() {
        let mut base = base(m);
        let (u, peer) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
        let f = BufferEvent::filter(&mut base, u, None, None, BevOptions::CLOSE_ON_FREE).unwrap();
        let events = record_events(&mut base, f);
        let got = record_input(&mut base, f);
        f.set_timeouts(&mut base, Some(Duration::from_millis(400)), None)
            .unwrap();
        f.enable(&mut base, What::READ).unwrap();
        trickle_then_read_timeout(&mut base, peer, &events, &got, m);
        f.free(&mut base).unwrap();
        peer.free(&mut base).unwrap();
    }
}

// ---- filters ----

/// Moves complete lines from `src` to `dst`, upper-cased; a partial line waits (unless flushing).
fn upper_lines() -> Box<FilterFn> {
    Box::new(|src: &mut Evbuffer, dst: &mut Evbuffer, _limit, mode| {
        let data = contents(src);
        let end = match data.iter().rposition(|&c| c == b'\n') {
            Some(i) => i + 1,
            None if mode != FlushMode::Normal => data.len(),
            None => return FilterResult::NeedMore,
        };
        src.drain(end).unwrap();
        dst.add(&data[..end].to_ascii_uppercase()).unwrap();
        FilterResult::Ok
    })
}

#[test]
fn uppercase_line_filter_both_directions() {
    for m in backends() {
        let mut base = base(m);
        let (raw, under) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
        let f = BufferEvent::filter(
            &mut base,
            under,
            Some(upper_lines()),
            Some(upper_lines()),
            BevOptions::CLOSE_ON_FREE,
        )
        .unwrap();
        assert_eq!(f.underlying(&base).unwrap(), Some(under));
        let lines = log();
        let l = lines.clone();
        f.set_read_cb(&mut base, move |base, bev| {
            push(&l, String::from_utf8(drain_input(base, bev)).unwrap())
        })
        .unwrap();
        f.enable(&mut base, What::READ | What::WRITE).unwrap();
        let raw_got = record_input(&mut base, raw);
        raw.enable(&mut base, What::READ).unwrap();

        raw.write(&mut base, b"hello\nwor").unwrap();
        run_until(&mut base, LIMIT, |_| !lines.borrow().is_empty());
        run_for(&mut base, Duration::from_millis(20));
        assert_eq!(entries(&lines), ["HELLO\n"]);
        raw.write(&mut base, b"ld\n").unwrap();
        run_until(&mut base, LIMIT, |_| lines.borrow().len() == 2);
        assert_eq!(entries(&lines), ["HELLO\n", "WORLD\n"]);

        f.write(&mut base, b"out one\nout t").unwrap();
        run_until(&mut base, LIMIT, |_| raw_got.borrow().len() >= 8);
        run_for(&mut base, Duration::from_millis(20));
        assert_eq!(*raw_got.borrow(), b"OUT ONE\n");
        // Flushing pushes the partial line through.
        f.flush(&mut base, What::WRITE, FlushMode::Flush).unwrap();
        run_until(&mut base, LIMIT, |_| raw_got.borrow().len() >= 13);
        assert_eq!(*raw_got.borrow(), b"OUT ONE\nOUT T");

        // Freeing the filter (CLOSE_ON_FREE) frees the underlying bufferevent.
        let ev = record_events(&mut base, raw);
        f.free(&mut base).unwrap();
        assert!(under.input(&mut base).is_err());
        run_until(&mut base, LIMIT, |_| !ev.borrow().is_empty());
        assert!(ev.borrow()[0].contains(BevFlags::EOF));
        raw.free(&mut base).unwrap();
    }
}

#[test]
fn filter_passes_underlying_events_and_read_watermark() {
    let mut base = EventBase::new().unwrap();
    let (raw, under) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
    let f = BufferEvent::filter(&mut base, under, None, None, BevOptions::NONE).unwrap();
    assert!(BufferEvent::filter(&mut base, under, None, None, BevOptions::NONE).is_err());
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    f.set_read_cb(&mut base, move |base, bev| {
        s.borrow_mut().push(bev.input(base).unwrap().len())
    })
    .unwrap();
    let events = record_events(&mut base, f);
    f.set_watermark(&mut base, What::READ, 4, 0).unwrap();
    f.enable(&mut base, What::READ).unwrap();
    raw.write(&mut base, b"ab").unwrap();
    run_for(&mut base, Duration::from_millis(20));
    assert!(seen.borrow().is_empty());
    raw.write(&mut base, b"cd").unwrap();
    run_until(&mut base, LIMIT, |_| !seen.borrow().is_empty());
    assert_eq!(*seen.borrow(), vec![4]);
    raw.free(&mut base).unwrap();
    run_until(&mut base, LIMIT, |_| !events.borrow().is_empty());
    assert!(events.borrow()[0].contains(BevFlags::EOF));
    f.free(&mut base).unwrap();
    under.free(&mut base).unwrap();
}

// ---- a deflate filter over a real socketpair ----

fn deflate_filter() -> Box<FilterFn> {
    let mut z = Compress::new(Compression::default(), false);
    Box::new(
        move |src: &mut Evbuffer, dst: &mut Evbuffer, _limit, mode| {
            let data = contents(src);
            let flush = match mode {
                FlushMode::Finished => FlushCompress::Finish,
                _ => FlushCompress::Sync,
            };
            if data.is_empty() && mode == FlushMode::Normal {
                return FilterResult::NeedMore;
            }
            let mut consumed = 0;
            loop {
                let mut out = vec![0u8; 64 * 1024];
                let (bi, bo) = (z.total_in(), z.total_out());
                let st = z.compress(&data[consumed..], &mut out, flush);
                consumed += (z.total_in() - bi) as usize;
                let produced = (z.total_out() - bo) as usize;
                dst.add(&out[..produced]).unwrap();
                match st {
                    Ok(Status::StreamEnd) => break,
                    Ok(_) if consumed == data.len() && produced < out.len() => break,
                    Ok(_) => {}
                    Err(_) => return FilterResult::Error,
                }
            }
            src.drain(consumed).unwrap();
            FilterResult::Ok
        },
    )
}

fn inflate_filter() -> Box<FilterFn> {
    let mut z = Decompress::new(false);
    Box::new(
        move |src: &mut Evbuffer, dst: &mut Evbuffer, _limit, _mode| {
            let data = contents(src);
            let mut consumed = 0;
            loop {
                let mut out = vec![0u8; 64 * 1024];
                let (bi, bo) = (z.total_in(), z.total_out());
                let st = z.decompress(&data[consumed..], &mut out, FlushDecompress::Sync);
                consumed += (z.total_in() - bi) as usize;
                let produced = (z.total_out() - bo) as usize;
                dst.add(&out[..produced]).unwrap();
                match st {
                    Ok(Status::StreamEnd) => break,
                    Ok(_) if produced == 0 => break,
                    Ok(_) => {}
                    Err(_) => return FilterResult::Error,
                }
            }
            src.drain(consumed).unwrap();
            FilterResult::Ok
        },
    )
}

/// Text-like data that compresses, with a pattern so that a misplaced byte shows.
fn compressible(n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n);
    let mut i = 0usize;
    while v.len() < n {
        v.extend(format!("line {i} of the revent deflate test {}\n", i % 7).bytes());
        i += 1;
    }
    v.truncate(n);
    v
}

fn deflate_roundtrip(sender_under: BufferEvent, receiver_under: BufferEvent, base: &mut EventBase) {
    let tx = BufferEvent::filter(
        base,
        sender_under,
        None,
        Some(deflate_filter()),
        BevOptions::CLOSE_ON_FREE,
    )
    .unwrap();
    let rx = BufferEvent::filter(
        base,
        receiver_under,
        Some(inflate_filter()),
        None,
        BevOptions::CLOSE_ON_FREE,
    )
    .unwrap();
    let got = record_input(base, rx);
    let rx_events = record_events(base, rx);
    rx.enable(base, What::READ).unwrap();
    let data = compressible(2 << 20);
    for chunk in data.chunks(100_000) {
        tx.write(base, chunk).unwrap();
        run_for(base, Duration::from_millis(1));
    }
    run_until(base, LIMIT, |_| got.borrow().len() >= data.len());
    assert!(*got.borrow() == data, "bytes differ after deflate/inflate");
    assert!(rx_events.borrow().is_empty(), "{:?}", rx_events.borrow());
    // Finishing the stream: the deflate end marker goes out; nothing more arrives.
    tx.flush(base, What::WRITE, FlushMode::Finished).unwrap();
    run_for(base, Duration::from_millis(20));
    assert_eq!(got.borrow().len(), data.len());
    tx.free(base).unwrap();
    rx.free(base).unwrap();
}

#[test]
fn deflate_filter_over_a_pair() {
    let mut base = EventBase::new().unwrap();
    let (a, b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
    deflate_roundtrip(a, b, &mut base);
}

#[test]
fn deflate_filter_over_a_socketpair() {
    for m in backends() {
        let mut base = base(m);
        let (x, y) = std::os::unix::net::UnixStream::pair().unwrap();
        let a = BufferEvent::socket(&mut base, Some(x.into()), BevOptions::CLOSE_ON_FREE).unwrap();
        let b = BufferEvent::socket(&mut base, Some(y.into()), BevOptions::CLOSE_ON_FREE).unwrap();
        deflate_roundtrip(a, b, &mut base);
    }
}
