//! The [`EngineProbe`] contract: a 2xx answer is `Ok`; a non-2xx answer
//! and a refused connection are `Err` with a reason that says which; the
//! address is preferred over the endpoint; a probe is safe to repeat.

use std::future::Future;

use crate::ports::{EngineProbe, ProbeTarget};

/// What a probe case needs: the probe and targets that behave a known way.
pub trait ProbeSubject: Send + Sync {
    /// The implementation under test.
    type Probe: EngineProbe;

    /// The probe the cases drive.
    fn probe(&self) -> &Self::Probe;

    /// A target (with an address) whose engine answers its health path
    /// with `status`.
    fn answering(&self, status: u16) -> impl Future<Output = ProbeTarget> + Send;

    /// A target (with an address) where nothing listens.
    fn refusing(&self) -> impl Future<Output = ProbeTarget> + Send;
}

/// Runs every case of this suite as a `#[tokio::test]`; `$setup` is an
/// `async fn() -> (Guard, impl ProbeSubject)`.
#[macro_export]
macro_rules! probe_contract {
    ($setup:path) => {
        $crate::__contract_tests!(
            probe,
            $setup,
            [
                a_2xx_is_healthy_and_repeatable,
                a_non_2xx_is_a_failure_naming_the_status,
                a_refused_connection_is_a_failure_saying_so,
                the_address_is_preferred_over_the_endpoint,
            ]
        );
    };
}

/// 200 and 204 are both healthy, and probing again changes nothing.
pub async fn a_2xx_is_healthy_and_repeatable<S: ProbeSubject>(s: &S) {
    for status in [200, 204] {
        let target = s.answering(status).await;
        assert_eq!(s.probe().probe(&target).await, Ok(()), "HTTP {status}");
        assert_eq!(s.probe().probe(&target).await, Ok(()), "again");
    }
}

/// A 500 (or 404) is a failure whose reason names the status.
pub async fn a_non_2xx_is_a_failure_naming_the_status<S: ProbeSubject>(s: &S) {
    for status in [500u16, 404] {
        let target = s.answering(status).await;
        let err = s.probe().probe(&target).await.unwrap_err();
        assert!(err.0.contains(&status.to_string()), "{status}: {err}");
    }
}

/// Nothing listening is a failure whose reason says the connection was
/// refused.
pub async fn a_refused_connection_is_a_failure_saying_so<S: ProbeSubject>(s: &S) {
    let target = s.refusing().await;
    let err = s.probe().probe(&target).await.unwrap_err();
    assert!(err.0.contains("refused"), "{err}");
}

/// With an address known, the endpoint is not what is probed: a healthy
/// engine's address with a refusing target's endpoint is healthy.
pub async fn the_address_is_preferred_over_the_endpoint<S: ProbeSubject>(s: &S) {
    let healthy = s.answering(200).await;
    let refusing = s.refusing().await;
    let mixed = ProbeTarget {
        endpoint: refusing.endpoint.clone(),
        ..healthy
    };
    assert_eq!(s.probe().probe(&mixed).await, Ok(()));
}
