//! [`FakeProbe`]: a scripted engine probe.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};

use super::lock;
use crate::ports::{EngineProbe, ProbeTarget};
use crate::ProbeError;

/// A scripted engine probe.
///
/// Results are looked up by the target's IP (as text) first, then by its
/// endpoint; each key has a queue of one-shot results and then a sticky
/// one. Targets with no script get the default (`Ok` unless changed).
#[derive(Debug, Clone)]
pub struct FakeProbe {
    inner: Arc<Mutex<ProbeState>>,
}

#[derive(Debug)]
struct ProbeState {
    queued: HashMap<String, VecDeque<Result<(), ProbeError>>>,
    sticky: HashMap<String, Result<(), ProbeError>>,
    default: Result<(), ProbeError>,
    calls: Vec<ProbeTarget>,
}

impl Default for FakeProbe {
    fn default() -> Self {
        Self {
            inner: Arc::new(Mutex::new(ProbeState {
                queued: HashMap::new(),
                sticky: HashMap::new(),
                default: Ok(()),
                calls: Vec::new(),
            })),
        }
    }
}

impl FakeProbe {
    /// Every engine answers healthy until told otherwise.
    pub fn new() -> Self {
        Self::default()
    }

    /// The result for targets without a script.
    pub fn set_default(&self, result: Result<(), ProbeError>) {
        lock(&self.inner).default = result;
    }

    /// The lasting result for `key` (an IP as text, or an endpoint).
    pub fn set(&self, key: &str, result: Result<(), ProbeError>) {
        lock(&self.inner).sticky.insert(key.to_owned(), result);
    }

    /// A one-shot result for `key`, used before the lasting one.
    pub fn push(&self, key: &str, result: Result<(), ProbeError>) {
        lock(&self.inner)
            .queued
            .entry(key.to_owned())
            .or_default()
            .push_back(result);
    }

    /// Every target probed, in order.
    pub fn calls(&self) -> Vec<ProbeTarget> {
        lock(&self.inner).calls.clone()
    }

    fn answer(&self, target: &ProbeTarget) -> Result<(), ProbeError> {
        let mut s = lock(&self.inner);
        s.calls.push(target.clone());
        let keys: Vec<String> = target
            .ip
            .map(|ip| ip.to_string())
            .into_iter()
            .chain(std::iter::once(target.endpoint.clone()))
            .collect();
        for key in &keys {
            if let Some(r) = s.queued.get_mut(key).and_then(VecDeque::pop_front) {
                return r;
            }
        }
        for key in &keys {
            if let Some(r) = s.sticky.get(key) {
                return r.clone();
            }
        }
        s.default.clone()
    }
}

impl EngineProbe for FakeProbe {
    fn probe(&self, target: &ProbeTarget) -> impl Future<Output = Result<(), ProbeError>> + Send {
        std::future::ready(self.answer(target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[tokio::test]
    async fn probe_scripts_prefer_ip_then_endpoint() {
        let probe = FakeProbe::new();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let t = ProbeTarget {
            endpoint: "http://rtm-g:8080".into(),
            ip: Some(ip),
            port: 8080,
        };
        probe.set("http://rtm-g:8080", Err(ProbeError("refused".into())));
        assert!(probe.probe(&t).await.is_err());
        probe.push("10.0.0.1", Ok(()));
        assert!(probe.probe(&t).await.is_ok());
        assert!(probe.probe(&t).await.is_err());
        assert_eq!(probe.calls().len(), 3);
    }
}
