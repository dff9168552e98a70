//! Being written.
use std::marker::PhantomData;
/// The operations service (being written).
#[derive(Debug)]
pub struct RuntimeService<S>(PhantomData<S>);
