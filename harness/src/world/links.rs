//! The link state of each client host, driven by the fault plan: turmoil's
//! partitions, one-way partitions and holds, set between simulation steps;
//! and the server's restarts (its host crashed, then started again).

use crate::faults::{Fault, FaultKind, FaultPlan};
use crate::trace::{Recorder, What};

use super::server::Durable;
use super::SERVER_HOST;

/// The link state of each client host, derived from the faults active on it.
pub(super) struct Links<'a> {
    /// (time, starts?, fault), by time; ends before starts at equal times.
    transitions: Vec<(u64, bool, &'a Fault)>,
    next: usize,
    active: Vec<&'a Fault>,
}

impl<'a> Links<'a> {
    pub(super) fn new(plan: &'a FaultPlan) -> Self {
        Self {
            transitions: plan.transitions(),
            next: 0,
            active: Vec::new(),
        }
    }

    pub(super) fn advance(
        &mut self,
        now_ms: u64,
        sim: &mut turmoil::Sim<'_>,
        recorder: &Recorder,
        durable: &Durable,
    ) {
        while let Some(&(at_ms, starts, fault)) = self.transitions.get(self.next) {
            if at_ms > now_ms {
                break;
            }
            self.next += 1;
            if starts {
                self.active.push(fault);
            } else if let Some(i) = self.active.iter().position(|f| std::ptr::eq(*f, fault)) {
                self.active.remove(i);
            }
            recorder.record_at(at_ms, "world", What::fault(fault, starts));
            match fault.kind {
                FaultKind::Restart { keeps_store } => {
                    restart(sim, recorder, durable, at_ms, starts, keeps_store)
                }
                _ => self.apply(&fault.host, sim),
            }
        }
    }

    /// Sets the host's link to what its active faults add up to.
    fn apply(&self, host: &str, sim: &turmoil::Sim<'_>) {
        let kinds: Vec<FaultKind> = self
            .active
            .iter()
            .filter(|f| f.host == host)
            .map(|f| f.kind)
            .collect();
        sim.release(host, SERVER_HOST);
        sim.repair(host, SERVER_HOST);
        let to = kinds
            .iter()
            .any(|k| matches!(k, FaultKind::Partition | FaultKind::PartitionToServer));
        let from = kinds
            .iter()
            .any(|k| matches!(k, FaultKind::Partition | FaultKind::PartitionFromServer));
        match (to, from) {
            (true, true) => sim.partition(host, SERVER_HOST),
            (true, false) => sim.partition_oneway(host, SERVER_HOST),
            (false, true) => sim.partition_oneway(SERVER_HOST, host),
            (false, false) if kinds.contains(&FaultKind::Hold) => sim.hold(host, SERVER_HOST),
            (false, false) => {}
        }
    }
}

/// The server goes down (its host crashed: every task and socket gone, the
/// peers told by FIN or RST as by an exiting process) or comes back up (the
/// host's software started again: the server's `serve` is called anew).
fn restart(
    sim: &mut turmoil::Sim<'_>,
    recorder: &Recorder,
    durable: &Durable,
    at_ms: u64,
    down: bool,
    keeps_store: bool,
) {
    if down {
        sim.crash(SERVER_HOST);
        if !keeps_store {
            durable.lose();
        }
        recorder.record_server_at(at_ms, crate::trace::ServerEvent::Restarted { keeps_store });
    } else {
        sim.bounce(SERVER_HOST);
    }
}
