//! Proposing: a fourth `impl Runner` block.
//!
//! This module owns a program's next proposal, from the agent's turn to a queued attempt: the
//! agent's checkout and context, the backoff and pause after repeated agent failures, the
//! agent's own commits and stray files, the boundary check, the commit under its attempt ref,
//! and the memory gate (a duplicate never runs).

use std::time::{Duration, Instant};

use picidae_agent::{Agent, AgentContext, AgentError};
use picidae_core::{Assignment, AttemptKind, AttemptStatus, Boundary};
use picidae_git::ChangeKind;
use picidae_store::{Attempt, NewAttempt};
use serde_json::json;

use crate::hidden::scrub;
use crate::runner::{
    agent_backoff, one_line, patch_hash, Events, LoopEvent, Proposed, Runner, AGENT_FAILURE_LIMIT,
};
use crate::{attempt_ref, SchedError};

impl Runner<'_> {
    /// After a failed agent turn (while the program is not paused), wait [`agent_backoff`]
    /// before the next one, or until `stopping` says to stop.
    pub(crate) fn wait_after_agent_failure(&self, stopping: &dyn Fn() -> bool) {
        if self.agent_failures == 0 || self.paused_because.is_some() {
            return;
        }
        let until = Instant::now() + agent_backoff(self.agent_failures);
        while !stopping() {
            let now = Instant::now();
            if now >= until {
                break;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(50)));
        }
    }

    /// Record `attempt` as failed before it was committed (`why` is its rejection JSON), and
    /// tell the history and `events`.
    fn fail_proposal(
        &mut self,
        attempt: &Attempt,
        why: serde_json::Value,
        reason: String,
        events: Events<'_>,
    ) -> Result<Proposed, SchedError> {
        let note = reason.clone();
        self.settle_proposal(attempt, AttemptStatus::Failed, why, &note, reason, events)
    }

    /// Decide a proposal that never runs (`failed` or `rejected`, with its rejection JSON and
    /// note), add it to the history and tell `events` (`reason`). The agent's checkout goes.
    pub(crate) fn settle_proposal(
        &mut self,
        attempt: &Attempt,
        status: AttemptStatus,
        why: serde_json::Value,
        note: &str,
        reason: String,
        events: Events<'_>,
    ) -> Result<Proposed, SchedError> {
        let _ = self.repo.remove_worktree(
            self.project
                .worktree_dir(&self.program.name, &self.agent_checkout()),
        );
        self.settle_unrun(attempt, status, why, note, reason, events)
    }

    /// [`settle_proposal`](Self::settle_proposal) for a proposal no agent checkout was made
    /// for (a replay, a retry): the checkout under that name may be another proposer's, in
    /// use, and stays.
    pub(crate) fn settle_unrun(
        &mut self,
        attempt: &Attempt,
        status: AttemptStatus,
        why: serde_json::Value,
        note: &str,
        reason: String,
        events: Events<'_>,
    ) -> Result<Proposed, SchedError> {
        self.project
            .store
            .reject_attempt(attempt.id, status, &why, note)?;
        self.push_history(attempt.id)?;
        events(&LoopEvent::Rejected {
            seq: attempt.seq,
            status,
            reason,
        });
        Ok(Proposed::Decided(status))
    }

    /// Ask the agent for a change on the current frontier, check it against the boundary,
    /// commit it, and pass it through the memory gate; a change that survives is queued.
    pub(crate) fn propose(
        &mut self,
        agent: &mut dyn Agent,
        events: Events<'_>,
    ) -> Result<Proposed, SchedError> {
        // A person's request to verify an earlier attempt again comes before the agent's turn,
        // and a contributor's claim waiting for verification too.
        if let Some(req) = self.next_retry()? {
            return self.propose_retry(req, events);
        }
        if let Some(c) = self.project.store.next_contribution(self.program.id)? {
            let id = c.id;
            let mut from = crate::contribute::Contributed::new(c, self.repo.clone());
            return self.propose_with(&mut from, Some(id), events);
        }
        self.propose_with(agent, None, events)
    }

    /// [`Runner::propose`] with `agent`; `contribution` is the contribution the proposal
    /// verifies, whose failures are its own and never count against the program's agent.
    fn propose_with(
        &mut self,
        agent: &mut dyn Agent,
        contribution: Option<i64>,
        events: Events<'_>,
    ) -> Result<Proposed, SchedError> {
        let frontier = self.frontier_commit();
        let attempt = self.project.store.insert_attempt(&NewAttempt {
            program_id: self.program.id,
            kind: AttemptKind::Explore,
            parent_commit: frontier.clone(),
            hypothesis: String::new(),
            proposer: agent.name(),
            params: None,
        })?;
        if let Some(id) = contribution {
            self.project.store.start_contribution(id, attempt.id)?;
        }
        let name = self.program.name.clone();
        let frontier_params = self.frontier_params()?;
        let wt_path = self.project.worktree_dir(&name, &self.agent_checkout());
        // An agent that edits no file (a sweep of environment parameters) gets no checkout.
        let wt = if agent.needs_checkout(&self.contract) {
            let _ = self.repo.remove_worktree(&wt_path);
            let wt = self.repo.add_worktree(&wt_path, &frontier)?;
            scrub(&self.contract, &wt.bench_dir())?;
            Some(wt)
        } else {
            None
        };
        let workspace = match &wt {
            Some(w) => w.bench_dir(),
            None => self.project.benchmark_dir(&self.program),
        };
        let attempt_dir = self.project.attempt_dir(&name, attempt.seq);
        let scratch = attempt_dir.join(picidae_agent::SCRATCH_DIR);
        let mut memory = crate::agent_turn::memory_brief(&self.project.store, &name)?;
        if let Some(note) = self
            .power()?
            .map(|p| p.agent_note(&self.contract.primary_metric))
        {
            memory = format!("{}\n\n{note}", memory.trim_end());
        }
        let frontier_metrics = crate::agent_turn::frontier_metrics(
            &self.project.store,
            &self.program,
            &self.contract,
        )?;
        let followups = if agent.uses_followups() {
            self.project.store.open_followups(self.program.id)?
        } else {
            Vec::new()
        };
        let ideas: Vec<String> = followups.iter().map(|f| f.text.clone()).collect();
        let in_flight = crate::agent_turn::in_flight(
            &self.project.store,
            &self.repo,
            &self.program,
            Some(attempt.id),
        )?;
        let proposal = {
            let ctx = AgentContext {
                program: &name,
                program_md: &self.program.program_md,
                contract: &self.contract,
                workspace: &workspace,
                frontier_value: self.program.frontier_value,
                frontier_metrics: &frontier_metrics,
                frontier_params: frontier_params.as_ref(),
                history: &self.history,
                in_flight: &in_flight,
                attempt_seq: attempt.seq,
                attempt_dir: &attempt_dir,
                scratch: &scratch,
                memory: &memory,
                followups: &ideas,
                project_dir: Some(self.project.root()),
            };
            agent.propose(&ctx)
        };
        let proposal = match proposal {
            Ok(p) => {
                self.agent_failures = 0;
                p
            }
            Err(e @ (AgentError::Exhausted | AgentError::Done)) => {
                self.agent_failures = 0;
                let _ = self.repo.remove_worktree(&wt_path);
                let (code, note) = match e {
                    AgentError::Done => ("done", "the agent said it has nothing more to propose"),
                    _ => ("exhausted", "the agent had nothing new to propose"),
                };
                self.project.store.reject_attempt(
                    attempt.id,
                    AttemptStatus::Failed,
                    &json!({ "agent_error": code }),
                    note,
                )?;
                return Ok(Proposed::Exhausted);
            }
            Err(e) => {
                let _ = self.repo.remove_worktree(&wt_path);
                let reason = e.to_string();
                let mut note = format!("agent failed: {reason}");
                if contribution.is_none() {
                    self.agent_failures += 1;
                }
                if self.agent_failures >= AGENT_FAILURE_LIMIT {
                    // Failing again at once would only fail again: the program waits for a
                    // person (`picidae program resume`), and says why.
                    let why = format!(
                        "paused after {} agent failures in a row; the last: {}",
                        self.agent_failures,
                        one_line(&reason)
                    );
                    self.project.store.pause_program(&name, &why)?;
                    note = format!("{note} ({why})");
                    self.paused_because = Some(why);
                    self.agent_failures = 0;
                }
                let rejection = json!({"agent_error": reason});
                return self.settle_proposal(
                    &attempt,
                    AttemptStatus::Failed,
                    rejection,
                    &note,
                    reason,
                    events,
                );
            }
        };
        if !followups.is_empty() {
            let ids: Vec<i64> = followups.iter().map(|f| f.id).collect();
            self.project.store.consume_followups(&ids, attempt.id)?;
        }
        if proposal.cost.usd.is_some() || proposal.cost.tokens.is_some() {
            self.project.store.set_attempt_agent_cost(
                attempt.id,
                proposal.cost.usd,
                proposal.cost.tokens,
            )?;
        }
        // The agent's transcript is already in the attempt directory: the command agent writes
        // it there itself (without following links), whether the turn succeeded or not.
        events(&LoopEvent::Proposed {
            seq: attempt.seq,
            hypothesis: proposal.hypothesis.clone(),
        });
        // What a reader of the attempt should know about how its change was taken.
        let mut notes: Vec<String> = Vec::new();
        // An agent may commit its edit, or even move its checkout to another history: its
        // change is everything between the frontier and its files when it finished, committed
        // or not. The checkout goes back to the frontier with those files (and the index) kept,
        // so the one commit made below has the frontier as its parent.
        if let Some(wt) = &wt {
            let moved = wt.head_commit().and_then(|head| {
                if head == frontier {
                    return Ok(None);
                }
                let descends = self.repo.is_ancestor(&frontier, &head).unwrap_or(false);
                wt.reset_soft(&frontier).map(|()| Some((head, descends)))
            });
            match moved {
                Ok(None) => {}
                Ok(Some((head, true))) => notes.push(format!(
                    "the agent committed in its checkout (up to {}); its commits and uncommitted \
                     edits were taken as one change",
                    &head[..head.len().min(12)]
                )),
                Ok(Some((head, false))) => notes.push(format!(
                    "the agent moved its checkout to {}, which does not descend from the \
                     frontier; its change is its final files against the frontier",
                    &head[..head.len().min(12)]
                )),
                Err(e) => {
                    return self.fail_proposal(
                        &attempt,
                        json!({ "checkout_error": e.to_string() }),
                        format!("the agent's checkout could not be read: {e}"),
                        events,
                    );
                }
            }
        }
        // The hidden files were removed from the agent's view; put them back so their absence
        // is not mistaken for the agent's change (any edit of them is still refused below).
        if let (Some(h), Some(wt)) = (&self.contract.hidden, &wt) {
            if let Err(e) = wt.restore(&h.files) {
                tracing::warn!("restoring hidden files in the agent checkout: {e}");
            }
        }
        let boundary = Boundary::new(&self.contract.boundary).map_err(|e| SchedError::Program {
            program: name.clone(),
            message: format!("boundary: {e}"),
        })?;
        let mut changes = match &wt {
            Some(wt) => wt.changed_paths()?,
            None => Vec::new(),
        };
        // New files outside the boundary (scratch output, logs, caches) are not the agent's
        // change: they are removed from the checkout before the commit, so they are neither
        // committed nor seen by any run, and do not reject the attempt. Edits and deletions of
        // existing files outside the boundary still do.
        let (stray, kept): (Vec<_>, Vec<_>) = changes.into_iter().partition(|c| {
            c.kind == ChangeKind::Added && boundary.check_one(&c.path, c.outside_prefix).is_some()
        });
        changes = kept;
        if let (false, Some(wt)) = (stray.is_empty(), &wt) {
            let paths: Vec<String> = stray.iter().map(|c| c.path.clone()).collect();
            if let Err(e) = wt.discard_paths(&paths) {
                return self.fail_proposal(
                    &attempt,
                    json!({ "checkout_error": e.to_string() }),
                    format!("new files outside the boundary could not be left out: {e}"),
                    events,
                );
            }
            const SHOWN: usize = 10;
            let mut list = paths
                .iter()
                .take(SHOWN)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            if paths.len() > SHOWN {
                list.push_str(&format!(" and {} more", paths.len() - SHOWN));
            }
            notes.push(format!(
                "ignored new files outside the boundary (not committed, never run): {list}"
            ));
        }
        let notes = notes.join("; ");
        let env_changed = proposal
            .params
            .as_ref()
            .is_some_and(|p| self.env_params_differ(p, frontier_params.as_ref()));
        if changes.is_empty() && env_changed {
            // Only environment parameters changed: nothing to commit, the attempt runs the
            // frontier's code with its own assignment.
            if wt.is_some() {
                let _ = self.repo.remove_worktree(&wt_path);
            }
            let params = proposal.params.clone().unwrap_or_default();
            self.project.store.set_attempt_params(
                attempt.id,
                &serde_json::to_value(&params).unwrap_or_default(),
            )?;
            self.record_commit(
                attempt.id,
                &frontier,
                &patch_hash(""),
                &[],
                Some(&proposal.hypothesis),
            )?;
            if !notes.is_empty() {
                self.project.store.set_attempt_note(attempt.id, &notes)?;
            }
            let attempt = self.project.store.attempt(attempt.id)?;
            if self.memory_gate(&attempt, "", Some(&params), events)? {
                return Ok(Proposed::Decided(AttemptStatus::Duplicate));
            }
            self.project.store.queue_attempt(attempt.id)?;
            self.push_history(attempt.id)?;
            return Ok(Proposed::Ready(Box::new(
                self.project.store.attempt(attempt.id)?,
            )));
        }
        let Some(wt) = wt.filter(|_| !changes.is_empty()) else {
            let _ = self.repo.remove_worktree(&wt_path);
            self.record_commit(
                attempt.id,
                &frontier,
                &patch_hash(""),
                &[],
                Some(&proposal.hypothesis),
            )?;
            let note = if notes.is_empty() {
                "the agent changed nothing".to_string()
            } else {
                format!("the agent changed nothing ({notes})")
            };
            return self.settle_proposal(
                &attempt,
                AttemptStatus::Rejected,
                json!({"no_change": true}),
                &note,
                "no change".into(),
                events,
            );
        };
        let mut touched = Vec::new();
        let mut violations = Vec::new();
        for c in &changes {
            touched.push(c.path.clone());
            violations.extend(boundary.check_one(&c.path, c.outside_prefix));
            if let ChangeKind::Renamed { from } = &c.kind {
                violations.extend(boundary.check_one(from, from.starts_with("../")));
            }
        }
        // Commit every proposal, rejected or not, so its diff is never lost.
        let message = format!(
            "{}\n\nPicidae-Program: {}\nPicidae-Attempt: {}\nPicidae-Proposer: {}\n",
            one_line(&proposal.hypothesis),
            name,
            attempt.seq,
            agent.name()
        );
        // A checkout git cannot commit (an embedded repository without a commit, say) is the
        // agent's failure, recorded as such; the loop goes on.
        let committed = wt
            .diff_against_head()
            .and_then(|patch| wt.commit_all(&message).map(|c| (patch, c)));
        let _ = self.repo.remove_worktree(&wt_path);
        let (patch, commit) = match committed {
            Ok(pc) => pc,
            Err(e) => {
                let reason = format!("the proposal could not be committed: {e}");
                let rejection = json!({ "commit_error": e.to_string() });
                return self.fail_proposal(&attempt, rejection, reason, events);
            }
        };
        self.repo
            .update_ref(&attempt_ref(&name, attempt.seq), &commit, None)?;
        // A code change keeps the frontier's environment parameters (its runs need them).
        if let Some(params) = proposal.params.as_ref().or(frontier_params.as_ref()) {
            let params = serde_json::to_value(params).unwrap_or_default();
            self.project.store.set_attempt_params(attempt.id, &params)?;
        }
        self.record_commit(
            attempt.id,
            &commit,
            &patch_hash(&patch),
            &touched,
            Some(&proposal.hypothesis),
        )?;
        if !violations.is_empty() {
            let a = self.project.store.attempt(attempt.id)?;
            picidae_memory::index_attempt(&self.project.store, &a, &patch)?;
            let paths: Vec<&str> = violations.iter().map(|v| v.path.as_str()).collect();
            let mut note = format!("edit outside the boundary: {}", paths.join(", "));
            if !notes.is_empty() {
                note = format!("{note}; {notes}");
            }
            let reason = note.clone();
            return self.settle_proposal(
                &attempt,
                AttemptStatus::Rejected,
                json!({ "boundary": violations }),
                &note,
                reason,
                events,
            );
        }
        if !notes.is_empty() {
            self.project.store.set_attempt_note(attempt.id, &notes)?;
        }
        let attempt = self.project.store.attempt(attempt.id)?;
        if self.memory_gate(&attempt, &patch, proposal.params.as_ref(), events)? {
            return Ok(Proposed::Decided(AttemptStatus::Duplicate));
        }
        self.project.store.queue_attempt(attempt.id)?;
        // The proposer's own history shows it as taken, so a sweep does not propose it again.
        self.push_history(attempt.id)?;
        Ok(Proposed::Ready(Box::new(
            self.project.store.attempt(attempt.id)?,
        )))
    }

    /// The frontier attempt's parameter assignment, when the contract has environment
    /// parameters (otherwise parameters live in files and need no tracking).
    fn frontier_params(&self) -> Result<Option<Assignment>, SchedError> {
        crate::agent_turn::frontier_params(&self.project.store, &self.program, &self.contract)
    }

    /// Whether `proposed` sets some environment parameter to another value than the frontier.
    fn env_params_differ(&self, proposed: &Assignment, frontier: Option<&Assignment>) -> bool {
        self.contract.params.iter().filter(|p| p.is_env()).any(|p| {
            let current = frontier.and_then(|f| f.get(&p.name)).or(p.default.as_ref());
            proposed.get(&p.name).is_some_and(|v| Some(v) != current)
        })
    }

    /// Memory: index the attempt and refuse to spend compute on something already tried.
    /// Returns true when the attempt was recorded as a duplicate (and must not run).
    pub(crate) fn memory_gate(
        &mut self,
        attempt: &Attempt,
        patch: &str,
        params: Option<&Assignment>,
        events: Events<'_>,
    ) -> Result<bool, SchedError> {
        let store = &self.project.store;
        picidae_memory::set_keys(store, attempt.id, patch, params)?;
        picidae_memory::index_attempt(store, attempt, patch)?;
        let Some(dup) = picidae_memory::find_duplicate(
            store,
            &self.program.benchmark_dir,
            attempt.id,
            &attempt.parent_commit,
            patch,
            params,
            Some(i64::from(self.policy.seeds)),
        )?
        else {
            return Ok(false);
        };
        picidae_memory::mark_duplicate(store, attempt.id, dup.of.attempt_id)?;
        let note = format!("duplicate ({}) of {}", dup.how, dup.of.line());
        self.project.store.reject_attempt(
            attempt.id,
            AttemptStatus::Duplicate,
            &json!({ "duplicate_of": dup.of.attempt_id, "how": dup.how, "prior": dup.of }),
            &note,
        )?;
        self.push_history(attempt.id)?;
        events(&LoopEvent::Rejected {
            seq: attempt.seq,
            status: AttemptStatus::Duplicate,
            reason: note,
        });
        Ok(true)
    }
}
