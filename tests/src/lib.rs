//! Harness shared by the integration tests lives here.
