//! Backend choice: the EVENT_NO* environment variables, IGNORE_ENV, avoid_method and
//! require_features. The environment is process-wide, so this binary has a single test that does all
//! the checks in order.

use revent::{Config, ConfigFlags, Error, EventBase, Features, Method};

const VARS: [&str; 6] = [
    "EVENT_NOEPOLL",
    "EVENT_NOIO_URING",
    "EVENT_NOPOLL",
    "EVENT_NOSELECT",
    "EVENT_SHOW_METHOD",
    "EVENT_PRECISE_TIMER",
];

fn method_of(r: revent::Result<EventBase>) -> Result<&'static str, String> {
    match r {
        Ok(b) => Ok(b.method()),
        Err(Error::NoBackend) => Err("NoBackend".into()),
        Err(e) => Err(format!("unexpected error {e:?}")),
    }
}

fn new_default() -> Result<&'static str, String> {
    method_of(EventBase::new())
}

fn with(cfg: &Config) -> Result<&'static str, String> {
    method_of(EventBase::with_config(cfg))
}

fn ignoring_env() -> Config {
    let mut c = Config::new();
    c.set_flag(ConfigFlags::IGNORE_ENV);
    c
}

/// Whether this kernel lets us have io_uring: where it does not (an old kernel, a container's seccomp
/// profile), the method after epoll is poll. Under CI (`CI=true`) it must.
fn io_uring_here() -> bool {
    let here = EventBase::method_available(Method::IoUring);
    assert!(
        here || std::env::var("CI").as_deref() != Ok("true"),
        "io_uring is unavailable on this machine, and CI=true requires it"
    );
    here
}

#[test]
fn environment_and_config_choose_the_backend() {
    for v in VARS {
        std::env::remove_var(v);
    }
    let uring = io_uring_here();
    // What comes after epoll, and where ET can be had without epoll.
    let next = if uring { "io_uring" } else { "poll" };
    let et_without_epoll = if uring {
        Ok("io_uring")
    } else {
        Err("NoBackend".to_string())
    };
    assert_eq!(new_default(), Ok("epoll"), "the best backend by default");

    std::env::set_var("EVENT_NOEPOLL", "1");
    assert_eq!(new_default(), Ok(next), "EVENT_NOEPOLL");
    std::env::set_var("EVENT_NOIO_URING", "1");
    assert_eq!(
        new_default(),
        Ok("poll"),
        "EVENT_NOEPOLL + EVENT_NOIO_URING"
    );
    assert_eq!(
        with(&Config::new()),
        Ok("poll"),
        "a default Config honours the environment too"
    );
    assert_eq!(with(&ignoring_env()), Ok("epoll"), "IGNORE_ENV");

    std::env::set_var("EVENT_NOPOLL", "");
    assert_eq!(
        new_default(),
        Ok("select"),
        "EVENT_NOEPOLL + EVENT_NOIO_URING + EVENT_NOPOLL (set, even empty)"
    );

    std::env::set_var("EVENT_NOSELECT", "1");
    assert_eq!(
        new_default(),
        Err("NoBackend".into()),
        "every backend disabled"
    );
    assert_eq!(with(&ignoring_env()), Ok("epoll"));

    // require_features with the environment in the way, then ignored.
    let mut cfg = Config::new();
    cfg.require_features(Features::ET);
    std::env::remove_var("EVENT_NOSELECT");
    std::env::remove_var("EVENT_NOPOLL");
    assert_eq!(
        with(&cfg),
        Err("NoBackend".into()),
        "ET needs epoll or io_uring, which EVENT_NOEPOLL and EVENT_NOIO_URING disable"
    );
    std::env::remove_var("EVENT_NOIO_URING");
    assert_eq!(with(&cfg), et_without_epoll, "ET on io_uring");
    cfg.set_flag(ConfigFlags::IGNORE_ENV);
    assert_eq!(with(&cfg), Ok("epoll"));
    std::env::remove_var("EVENT_NOEPOLL");

    // EVENT_SHOW_METHOD and EVENT_PRECISE_TIMER do not change the choice.
    std::env::set_var("EVENT_SHOW_METHOD", "1");
    std::env::set_var("EVENT_PRECISE_TIMER", "1");
    assert_eq!(new_default(), Ok("epoll"));
    for v in VARS {
        std::env::remove_var(v);
    }

    // avoid_method and require_features alone.
    let mut cfg = ignoring_env();
    cfg.avoid_method(Method::Epoll);
    assert_eq!(with(&cfg), Ok(next));
    cfg.avoid_method(Method::IoUring);
    assert_eq!(with(&cfg), Ok("poll"));
    cfg.avoid_method(Method::Poll);
    assert_eq!(with(&cfg), Ok("select"));
    cfg.avoid_method(Method::Select);
    assert_eq!(with(&cfg), Err("NoBackend".into()));

    let mut cfg = ignoring_env();
    cfg.require_features(Features::O1);
    assert_eq!(with(&cfg), Ok("epoll"));
    let mut cfg = ignoring_env();
    cfg.require_features(Features::FDS);
    assert_eq!(
        with(&cfg),
        Ok("poll"),
        "epoll cannot watch every kind of fd"
    );
    let mut cfg = ignoring_env();
    cfg.require_features(Features::ET)
        .avoid_method(Method::Epoll);
    assert_eq!(with(&cfg), et_without_epoll);
    cfg.avoid_method(Method::IoUring);
    assert_eq!(with(&cfg), Err("NoBackend".into()));
    let mut cfg = ignoring_env();
    cfg.require_features(Features::EARLY_CLOSE)
        .avoid_method(Method::Epoll)
        .avoid_method(Method::IoUring);
    assert_eq!(
        with(&cfg),
        Ok("poll"),
        "poll detects early close with POLLRDHUP"
    );
}
