//! Ctrl-C for long commands: the first one asks the command to stop between two messages
//! (so it can release what it holds and print its summary); a second one exits at once.

use tokio::sync::watch;

/// Exit status after an interruption, as shells report SIGINT (128 + 2).
pub const INTERRUPTED_EXIT: u8 = 130;

/// Whether Ctrl-C was pressed; cheap to clone.
#[derive(Debug, Clone)]
pub struct Interrupt {
    pressed: watch::Receiver<bool>,
}

impl Interrupt {
    /// Starts listening for Ctrl-C. From now on the first Ctrl-C no longer kills the process.
    pub fn listen() -> Self {
        let (sender, pressed) = watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_err() {
                // No signal handling on this platform: Ctrl-C keeps its default effect.
                return;
            }
            eprintln!("\nstopping after the current message (Ctrl-C again to quit at once)");
            let _ = sender.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                // Held messages come back by themselves when their lease runs out.
                std::process::exit(i32::from(INTERRUPTED_EXIT));
            }
        });
        Interrupt { pressed }
    }

    pub fn is_set(&self) -> bool {
        *self.pressed.borrow()
    }

    /// Resolves when Ctrl-C is pressed (at once if it was already).
    pub async fn wait(&mut self) {
        if self.pressed.wait_for(|pressed| *pressed).await.is_err() {
            // The listener is gone (no signal support): never resolve.
            std::future::pending::<()>().await;
        }
    }
}
