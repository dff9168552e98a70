//! Unit tests of the REST wire types: strict bodies and query strings,
//! and the JSON shape of the views.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::*;

#[test]
fn bodies_are_strict() {
    let json = Some("application/json");
    let b: StartBody = parse_body(json, br#"{"image_ref":"x"}"#, None).expect("ok");
    assert_eq!(b.image_ref, "x");
    let e = parse_body::<StartBody>(json, br#"{"image_ref":"x","y":1}"#, None)
        .expect_err("unknown field");
    assert_eq!(e.code(), ErrorCode::InvalidRequest);
    assert!(e.to_string().contains("unknown field `y`"), "{e}");
    let e = parse_body::<StartBody>(json, b"", None).expect_err("required");
    assert!(e.to_string().contains("required"));
    let e = parse_body::<StartBody>(Some("text/plain"), br#"{"image_ref":"x"}"#, None)
        .expect_err("content type");
    assert!(e.to_string().contains("Content-Type"));
    let e = parse_body::<StartBody>(None, br#"{"image_ref":"x"}"#, None).expect_err("none");
    assert!(e.to_string().contains("Content-Type"));
    let e = parse_body::<StartBody>(json, b"{", None).expect_err("bad json");
    assert!(e.to_string().contains("invalid JSON body"));
    let s: StopBody = parse_body(None, b"", Some(StopBody::default())).expect("empty");
    assert_eq!(s.timeout_s, None);
    let s: StopBody = parse_body(
        Some("application/json; charset=utf-8"),
        br#"{"timeout_s":10}"#,
        None,
    )
    .expect("ok");
    assert_eq!(stop_timeout(&s).expect("ok"), Some(Duration::from_secs(10)));
    assert!(stop_timeout(&StopBody {
        timeout_s: Some(3601)
    })
    .is_err());
    let e = parse_body::<StopBody>(json, br#"{"timeout_s":-1}"#, None).expect_err("neg");
    assert_eq!(e.code(), ErrorCode::InvalidRequest);
    let p: AdminPatchBody = parse_body(json, br#"{"image_ref":"x"}"#, None).expect("ok");
    assert!(!p.force);
    assert!(parse_body::<PatchBody>(json, br#"{"image_ref":"x","force":true}"#, None).is_err());
}

#[test]
fn query_values_name_their_parameter() {
    assert_eq!(q_limit(&None).expect("default"), 50);
    assert_eq!(q_limit(&Some("500".into())).expect("max"), 500);
    for bad in ["0", "501", "x", "-1"] {
        let e = q_limit(&Some(bad.into())).expect_err(bad);
        assert!(e.to_string().starts_with("invalid_request: limit:"), "{e}");
    }
    assert!(q_before(&Some("0".into()))
        .expect_err("zero")
        .to_string()
        .contains("before:"));
    assert!(q_since(&Some("yesterday".into()))
        .expect_err("since")
        .to_string()
        .contains("since:"));
    assert!(q_since(&Some("2030-01-01T00:00:00Z".into()))
        .expect("ok")
        .is_some());
    let e = q_op_kind(&Some("explode".into())).expect_err("kind");
    assert!(e
        .to_string()
        .contains("op_kind: \"explode\" is not one of start, stop"));
    assert!(q_game("game_id", &Some("-x".into()))
        .expect_err("game")
        .to_string()
        .contains("game_id:"));
}

#[test]
fn image_refs_longer_than_the_documented_limit_are_refused() {
    let name = format!("rtm.local/{}", "a".repeat(MAX_IMAGE_REF_LEN - 10));
    assert_eq!(name.len(), MAX_IMAGE_REF_LEN);
    assert!(parse_image_ref(&name).is_ok());
    let e = parse_image_ref(&format!("{name}a")).expect_err("too long");
    assert_eq!(e.code(), ErrorCode::InvalidImageRef);
}

#[test]
fn pages_split() {
    assert_eq!(
        split_page(vec![1, 2, 3], 2, |x| x * 10),
        (vec![1, 2], Some(20))
    );
    assert_eq!(split_page(vec![1, 2], 2, |x| x * 10), (vec![1, 2], None));
}

#[test]
fn timestamps_are_utc_rfc3339() {
    let t = OffsetDateTime::parse("2030-01-01T02:00:00+02:00", &Rfc3339).expect("t");
    assert_eq!(rfc3339(t), "2030-01-01T00:00:00Z");
}
