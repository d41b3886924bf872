//! The fault-injection harness: crashes at the adapter boundary ([`crash`]), Lambda's two
//! event-source mappings played faithfully over real queues and streams ([`sqs`],
//! [`stream`]), and the invariants every run must keep ([`invariants`]), checked on a
//! snapshot of the world read back from the emulator or the embedded adapters ([`world`]).
//! The scenarios are in `tests/tests/faults/`.

pub mod crash;
pub mod invariants;
pub mod sqs;
pub mod stream;
pub mod world;
