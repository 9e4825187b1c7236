//! Leadership: only the holder of the Lease reconciles. [`lead`] runs the work while this
//! instance holds the lease and ends with an error the moment it does not, so the process
//! exits and a fresh one queues for the lease (as linkerd's policy controller does).

use std::future::Future;

use tokio::sync::watch;

/// Why leading ended.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LeadError {
    /// Another instance holds the lease now.
    #[error("lost the lease: another instance leads now")]
    Lost,
    /// The task keeping the lease ended.
    #[error("the lease task ended")]
    LeaseTaskEnded,
}

/// Waits for the lease, then runs `work` until it ends (shutdown) or the lease is lost.
pub async fn lead<W, Fut>(mut leader: watch::Receiver<bool>, work: W) -> Result<(), LeadError>
where
    W: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    while !*leader.borrow_and_update() {
        leader
            .changed()
            .await
            .map_err(|_| LeadError::LeaseTaskEnded)?;
    }
    tracing::info!("leading: reconciling");
    let work = work();
    tokio::pin!(work);
    loop {
        tokio::select! {
            () = &mut work => return Ok(()),
            changed = leader.changed() => {
                changed.map_err(|_| LeadError::LeaseTaskEnded)?;
                if !*leader.borrow_and_update() {
                    return Err(LeadError::Lost);
                }
            }
        }
    }
}

/// An in-process lease for tests and single-instance runs: the first to ask holds it until it
/// lets go; the others wait.
#[derive(Debug, Default)]
pub struct LocalLease {
    holder: std::sync::Mutex<Option<String>>,
    senders: std::sync::Mutex<Vec<(String, watch::Sender<bool>)>>,
}

impl LocalLease {
    /// Joins the election as `identity`; the receiver says whether it leads.
    pub fn join(&self, identity: &str) -> watch::Receiver<bool> {
        let mut holder = self.holder.lock().unwrap_or_else(|e| e.into_inner());
        let leads = holder.get_or_insert_with(|| identity.to_string()) == identity;
        let (tx, rx) = watch::channel(leads);
        self.senders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((identity.to_string(), tx));
        rx
    }

    /// The holder lets go; the next in line leads.
    pub fn release(&self, identity: &str) {
        let mut holder = self.holder.lock().unwrap_or_else(|e| e.into_inner());
        if holder.as_deref() != Some(identity) {
            return;
        }
        let senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        *holder = senders
            .iter()
            .find(|(id, _)| id != identity)
            .map(|(id, _)| id.clone());
        for (id, tx) in senders.iter() {
            let _ = tx.send(holder.as_deref() == Some(id.as_str()));
        }
    }
}
