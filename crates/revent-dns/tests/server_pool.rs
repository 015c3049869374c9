//! The resolver's UDP socket pool, observed from revent's own server: while the resolver is busy,
//! a finished transmission's socket (its source port) serves the next query to the same server;
//! a late answer that reaches a pooled socket is dropped without harm; once idle, the resolver
//! holds nothing in the base.

use revent::EventBase;
use revent_dns::{
    DnsError, Outcome, Question, Rcode, Records, ResolvConf, Resolver, ServerOptions, ServerPort,
    ServerRequest, MAX_ATTEMPTS,
};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

const WATCHDOG: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Shared {
    /// (name as asked, source port), in arrival order.
    seen: Vec<(String, u16)>,
    /// The hold request's queries (the resolver asks again after each timeout).
    held: Vec<ServerRequest>,
    slow_asked: u32,
    late_sent: bool,
}

#[test]
fn sockets_are_reused_and_late_answers_on_pooled_ones_are_dropped() {
    let mut base = EventBase::new().unwrap();
    let shared: Rc<RefCell<Shared>> = Rc::default();
    let sh = shared.clone();
    let port = ServerPort::bind(
        &mut base,
        "127.0.0.1:0".parse().unwrap(),
        ServerOptions::default(),
        move |base, req| {
            let q = req.questions().unwrap().remove(0);
            let lower = q.name.to_ascii_lowercase();
            sh.borrow_mut()
                .seen
                .push((lower.clone(), req.peer_addr().unwrap().port()));
            assert_eq!(q.qtype, Question::A);
            match lower.as_str() {
                // Kept unanswered: the resolver stays busy, so its pool stays.
                "hold.example" => sh.borrow_mut().held.push(req),
                // The first query is answered only after the resolver has given up on it and
                // asked again (which is answered at once).
                "slow.example" => {
                    sh.borrow_mut().slow_asked += 1;
                    if sh.borrow().slow_asked == 1 {
                        let sh2 = sh.clone();
                        let t = base.new_timer(move |base, fired| {
                            req.add_a(&q.name, &[[192, 0, 2, 66].into()], 1).unwrap();
                            req.respond(base, Rcode::NOERROR).unwrap();
                            sh2.borrow_mut().late_sent = true;
                            base.free(fired.id).unwrap();
                        });
                        base.add(t, Some(Duration::from_millis(600))).unwrap();
                    } else {
                        req.add_a(&q.name, &[[192, 0, 2, 2].into()], 1).unwrap();
                        req.respond(base, Rcode::NOERROR).unwrap();
                    }
                }
                _ => {
                    req.add_a(&q.name, &[[192, 0, 2, 3].into()], 1).unwrap();
                    req.respond(base, Rcode::NOERROR).unwrap();
                }
            }
        },
    )
    .unwrap();
    let resolver = Resolver::new(
        ResolvConf::new()
            .with_nameserver(port.udp_addr().unwrap())
            .with_timeout(Duration::from_millis(300))
            // Enough that hold, asked again every 300 ms, is still pending at the end.
            .with_attempts(MAX_ATTEMPTS),
    );
    let results: Rc<RefCell<Vec<(&str, Outcome)>>> = Rc::default();
    let collect = |tag: &'static str| {
        let r = results.clone();
        move |_: &mut EventBase, o: Outcome| r.borrow_mut().push((tag, o))
    };
    let watchdog = base.new_timer(|base, _| base.loopbreak());
    base.add(watchdog, Some(WATCHDOG)).unwrap();
    let run_until = |base: &mut EventBase, done: &dyn Fn() -> bool| {
        while !done() && !base.got_break() {
            base.run(revent::LoopFlags::ONCE).unwrap();
        }
        assert!(!base.got_break(), "the watchdog fired");
    };

    resolver.resolve_ipv4(&mut base, "hold.example.", collect("hold"));
    run_until(&mut base, &|| !shared.borrow().held.is_empty());
    resolver.resolve_ipv4(&mut base, "slow.example.", collect("slow"));
    run_until(&mut base, &|| results.borrow().len() == 1);
    // The late answer to slow's first query reaches its socket, now pooled.
    run_until(&mut base, &|| shared.borrow().late_sent);
    // Let the loop see that socket readable before anything takes it from the pool.
    let paused = Rc::new(std::cell::Cell::new(false));
    let p = paused.clone();
    let pause = base.new_timer(move |_, _| p.set(true));
    base.add(pause, Some(Duration::from_millis(50))).unwrap();
    run_until(&mut base, &|| paused.get());
    resolver.resolve_ipv4(&mut base, "after.example.", collect("after"));
    run_until(&mut base, &|| results.borrow().len() == 2);
    // Only the answer to its latest query is taken; the others are dropped like any stray.
    let held = std::mem::take(&mut shared.borrow_mut().held);
    for h in held {
        h.respond(&mut base, Rcode::NXDOMAIN).unwrap();
    }
    run_until(&mut base, &|| resolver.pending() == 0);
    base.free(watchdog).unwrap();

    let r = results.borrow();
    assert_eq!(r[0].0, "slow");
    assert_eq!(
        r[0].1.as_ref().unwrap().records,
        Records::Ipv4(vec![[192, 0, 2, 2].into()]),
        "the retry's answer; the late one was not taken for it"
    );
    assert_eq!(r[1].0, "after");
    assert_eq!(
        r[1].1.as_ref().unwrap().records,
        Records::Ipv4(vec![[192, 0, 2, 3].into()])
    );
    assert_eq!(r[2], ("hold", Err(DnsError::NotExist)));

    let seen = shared.borrow().seen.clone();
    let (hold, others): (Vec<_>, Vec<_>) = seen.iter().partition(|(n, _)| n == "hold.example");
    let names: Vec<&str> = others.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["slow.example", "slow.example", "after.example"]);
    let (slow1, slow2, after) = (others[0].1, others[1].1, others[2].1);
    assert!(
        hold.iter().all(|(_, p)| *p == hold[0].1),
        "hold asked again from its own socket: {hold:?}"
    );
    assert_ne!(
        hold[0].1, slow1,
        "requests in flight together have sockets of their own"
    );
    assert_eq!(slow1, slow2, "the retry went out on the same socket");
    assert_eq!(slow1, after, "and the next request took it from the pool");

    // Idle: no socket, probe or timer of the resolver is left, so the loop ends once the port
    // is closed.
    port.close(&mut base);
    base.free(pause).unwrap();
    base.dispatch().unwrap();
}
