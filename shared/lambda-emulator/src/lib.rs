//! A deployed function's binary run locally the way Lambda runs it (like `sam local invoke`,
//! without Docker): a cleared environment with Lambda's variables, the Runtime API on a
//! loopback port, one event at a time, and the function's configuration read from the SAM
//! template. `referral invoke`, the benchmarks and the tests drive function binaries with
//! [`run_function`].

mod driver;
mod function;
pub mod ids;
pub mod runner;
pub mod runtime_api;
pub mod template;
mod usage;

pub use runner::{
    DEFAULT_INIT_TIMEOUT, DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT, FunctionSpec, InitFailure,
    Invocation, InvocationOutcome, InvokeError, Payload, RunStats, child_env, run_function,
    run_function_with,
};
pub use runtime_api::{FunctionError, MAX_PAYLOAD_BYTES, RuntimeApi};
