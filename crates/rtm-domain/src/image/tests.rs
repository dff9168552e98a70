//! Unit tests of image references: parsing and normalisation, the
//! allow-list, the patch rule and semantic versions.

use super::*;
use proptest::prelude::*;

fn p(s: &str) -> ImageRef {
    ImageRef::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn normalisation_follows_docker() {
    let cases = [
            ("nginx", "docker.io/library/nginx:latest"),
            ("nginx:1.25", "docker.io/library/nginx:1.25"),
            ("acme/engine", "docker.io/acme/engine:latest"),
            ("docker.io/nginx", "docker.io/library/nginx:latest"),
            ("localhost/engine:1", "localhost/engine:1"),
            ("localhost:5000/a/b:2", "localhost:5000/a/b:2"),
            ("GHCR.io/acme/engine:1.0.0", "ghcr.io/acme/engine:1.0.0"),
            ("ghcr.io/acme/engine:1.0.0", "ghcr.io/acme/engine:1.0.0"),
            ("[::1]:5000/x:1", "[::1]:5000/x:1"),
            (
                "e@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "docker.io/library/e@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ),
            ("a_b__c-d---e/f.g:tag_1.2-x", "docker.io/a_b__c-d---e/f.g:tag_1.2-x"),
        ];
    for (input, want) in cases {
        assert_eq!(p(input).to_string(), want, "{input}");
    }
}

#[test]
fn rejects_malformed() {
    for bad in [
        "",
        ":tag",
        "UPPER",
        "a//b",
        "a/",
        "/a",
        "a:",
        "a:-tag",
        "a@sha256:short",
        "a@:0123456789abcdef0123456789abcdef",
        "a b",
        "a..b",
        "a._b",
        "-a",
        "a-",
        "host:port/a",
        "bad_host.io/a",
        &format!("a:{}", "t".repeat(129)),
        &"a".repeat(256),
        "a;rm -rf",
        "a\n",
    ] {
        assert!(ImageRef::parse(bad).is_err(), "{bad:?} should be rejected");
    }
}

#[test]
fn allowlist_matches_exactly() {
    let list = Allowlist::parse(
            "ghcr.io/acme/engine, localhost:5000/games/*, docker.io/library/nginx, registry.example.com/*",
        )
        .unwrap();
    let yes = [
        "ghcr.io/acme/engine:1",
        "GHCR.IO/acme/engine:1",
        "localhost:5000/games/chess:1",
        "localhost:5000/games/deep/chess:1",
        "nginx",
        "registry.example.com/anything/at/all:1",
    ];
    let no = [
        "ghcr.io/acme/engine2:1",
        "ghcr.io/acme/engine/sub:1",
        "ghcr.io.evil.com/acme/engine:1",
        "evil.com/ghcr.io/acme/engine:1",
        "ghcr.io/acme:1",
        "localhost:5000/games:1",
        "localhost:5000/gamesx/chess:1",
        "localhost/games/chess:1",
        "localhost:5001/games/chess:1",
        "nginxx",
        "library/nginx2",
        "registry.example.com.evil/x:1",
    ];
    for s in yes {
        assert!(list.allows(&p(s)), "{s} should be allowed");
    }
    for s in no {
        assert!(!list.allows(&p(s)), "{s} should be refused");
    }
    assert!(!Allowlist::empty().allows(&p("nginx")));
}

#[test]
fn a_whole_registry_with_a_port() {
    let list = Allowlist::parse("rtm.local/engine, 127.0.0.1:1/*, localhost:5000/*").unwrap();
    for s in [
        "127.0.0.1:1/engine:1.0.0",
        "127.0.0.1:1/a/b:2",
        "localhost:5000/x:1",
    ] {
        assert!(list.allows(&p(s)), "{s} should be allowed");
    }
    for s in [
        "127.0.0.1:2/engine:1",
        "127.0.0.1/engine:1",
        "localhost/x:1",
    ] {
        assert!(!list.allows(&p(s)), "{s} should be refused");
    }
    for bad in ["127.0.0.1:x/*", "engine:1.0/*", "127.0.0.1:1/engine:1"] {
        assert!(Allowlist::parse(bad).is_err(), "{bad:?} should be rejected");
    }
}

#[test]
fn allowlist_rejects_bad_entries() {
    for bad in [
        "ghcr.io/acme/engine:1.0",
        "ghcr.io/a@sha256:00",
        "bad host/x",
        "bad_host.io/x",
    ] {
        assert!(Allowlist::parse(bad).is_err(), "{bad}");
    }
    assert!(Allowlist::parse(" , ").unwrap().is_empty());
}

#[test]
fn patch_rule() {
    let ok = [
        ("e:1.0.0", "e:1.0.1", false),
        ("e:1.0.5", "e:1.0.0", false),
        ("e:v1.2.3", "e:1.2.9-rc.1", false),
        ("e:latest", "e:2.0.0", false),
        ("e:1.0.0", "e:nightly", false),
        ("e:1.0.0", "e:1.1.0", true),
        ("e:1.0.0", "e:1.0.0", false),
    ];
    for (a, b, force) in ok {
        assert_eq!(check_patch(&p(a), &p(b), force), Ok(()), "{a} -> {b}");
    }
    assert!(matches!(
        check_patch(&p("e:1.0.0"), &p("e:1.1.0"), false),
        Err(PatchRefusal::NotAPatchVersion { .. })
    ));
    assert!(matches!(
        check_patch(&p("e:1.0.0"), &p("e:2.0.0"), false),
        Err(PatchRefusal::NotAPatchVersion { .. })
    ));
    assert!(matches!(
        check_patch(&p("e:1.0.0"), &p("f:1.0.1"), true),
        Err(PatchRefusal::OtherRepository { .. })
    ));
}

#[test]
fn semver_parse() {
    assert_eq!(
        SemVer::parse("1.2.3"),
        Some(SemVer {
            major: 1,
            minor: 2,
            patch: 3
        })
    );
    assert_eq!(
        SemVer::parse("v10.0.1+b"),
        Some(SemVer {
            major: 10,
            minor: 0,
            patch: 1
        })
    );
    for bad in ["1.2", "1.2.3.4", "01.2.3", "a.b.c", "latest", ""] {
        assert_eq!(SemVer::parse(bad), None, "{bad}");
    }
}

fn component() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,5}((\\.|_|__|-{1,3})[a-z0-9]{1,5}){0,2}"
}

proptest! {
    #[test]
    fn generated_references_parse_and_roundtrip(
        host in proptest::option::of("[a-z][a-z0-9]{0,8}\\.(io|com|local)(:[0-9]{2,5})?"),
        first in "[a-z0-9]{1,5}((_|__|-{1,3})[a-z0-9]{1,5}){0,2}",
        rest in proptest::collection::vec(component(), 0..3),
        tag in proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
    ) {
        let mut s = String::new();
        if let Some(h) = &host { s.push_str(h); s.push('/'); }
        // Without a host, a first component with a '.' would itself be
        // read as a registry (Docker's rule), so it has none.
        s.push_str(&first);
        for c in &rest { s.push('/'); s.push_str(c); }
        if let Some(t) = &tag { s.push(':'); s.push_str(t); }
        let r = ImageRef::parse(&s).unwrap();
        // The normalised form is a fixed point.
        prop_assert_eq!(ImageRef::parse(&r.to_string()).unwrap(), r.clone());
        prop_assert_eq!(r.tag(), Some(tag.as_deref().unwrap_or("latest")));
        if let Some(h) = host { prop_assert_eq!(r.registry(), h.as_str()); }
    }

    #[test]
    fn parse_never_panics(s in "\\PC{0,300}") {
        if let Ok(r) = ImageRef::parse(&s) {
            prop_assert_eq!(ImageRef::parse(&r.to_string()).unwrap(), r);
        }
    }

    #[test]
    fn a_host_that_only_starts_like_an_allowed_one_is_refused(suffix in "[a-z]{1,8}") {
        let list = Allowlist::parse("ghcr.io/acme/*").unwrap();
        let evil = p(&format!("ghcr.io.{suffix}.com/acme/engine:1"));
        prop_assert!(!list.allows(&evil));
        let evil = p(&format!("ghcr.io/acme{suffix}/engine:1"));
        prop_assert!(!list.allows(&evil));
    }
}
