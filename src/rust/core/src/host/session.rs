//! The host's side of the conversation with one child, as a pure state
//! machine: the launch report, the hello, and which request is outstanding.
//!
//! Every request the host sends that expects an answer (an exec, a tool
//! result or tool error) carries a fresh random id; every reply from the
//! child (a result, an error, a tool call) must name the outstanding one in
//! its `re`, or it is discarded and counted. So a reply can never be taken
//! for the answer to another request, whatever the sandboxed code writes to
//! its socket, and ids are unpredictable, so no reply can be prepared for a
//! request not yet sent. No system calls here: the caller supplies the ids
//! and acts on the returned `Step`.
//!
//! An exec is answered by a result or an error, after any number of tool
//! calls (each answered by the host in turn) and plots (which need no
//! answer). A file request is answered by one file reply and nothing else.

use crate::error::{Error, ErrorKind};
use crate::frame::{self, Frame, Kind};
use crate::policy::{ExitReport, LaunchFailure, LaunchReport};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for the launcher's report.
    Launching,
    /// Waiting for the child's hello.
    Hello,
    /// Ready; no request outstanding.
    Idle,
    /// A request (`req`) was sent; its reply is due. After a tool reply,
    /// `prev` is the request the child was answering when it called the
    /// tool: a child interrupted while it waited for the tool answers that
    /// one instead (0: none).
    Waiting {
        req: u64,
        prev: u64,
    },
    /// The child called a tool (`call`) while answering `req`; the host owes
    /// it a tool result or error. A child that gives up waiting (it was
    /// interrupted) may still answer `req` itself.
    Serving {
        call: u64,
        req: u64,
    },
    /// A file request (`req`) was sent; its file reply is due.
    Transfer {
        req: u64,
    },
    Closed,
}

impl Phase {
    /// The phase's name as R sees it.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Launching | Phase::Hello => "starting",
            Phase::Idle => "idle",
            Phase::Waiting { .. } | Phase::Transfer { .. } => "busy",
            Phase::Serving { .. } => "tool_call",
            Phase::Closed => "closed",
        }
    }
}

/// What the caller does with a frame the child sent.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing to report (a recorded launch or exit report).
    Nothing,
    /// The child is ready (it said hello with the right token).
    Ready(LaunchReport),
    /// The launcher could not build the sandbox.
    LaunchFailed(LaunchFailure),
    /// A reply to the outstanding request: check its value and deliver it.
    Reply { kind: Kind, payload: Vec<u8> },
    /// A frame that answers nothing outstanding: dropped (and counted).
    Discarded,
    /// The child broke the protocol: stop talking to it.
    Violation(String),
}

/// The ids to put on a request the host is about to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub id: u64,
    pub re: u64,
}

#[derive(Debug)]
pub struct Session {
    phase: Phase,
    token: Vec<u8>,
    report: LaunchReport,
    exit_report: Option<ExitReport>,
    discarded: u64,
}

impl Session {
    pub fn new(token: &[u8]) -> Session {
        Session {
            phase: Phase::Launching,
            token: token.to_vec(),
            report: LaunchReport::default(),
            exit_report: None,
            discarded: 0,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// True once the hello arrived and until the session closed.
    pub fn is_running(&self) -> bool {
        matches!(
            self.phase,
            Phase::Idle | Phase::Waiting { .. } | Phase::Serving { .. } | Phase::Transfer { .. }
        )
    }

    pub fn report(&self) -> &LaunchReport {
        &self.report
    }

    /// How the child's R process ended, as its supervisor reported.
    pub fn exit_report(&self) -> Option<ExitReport> {
        self.exit_report
    }

    /// Frames dropped because they answered nothing outstanding.
    pub fn discarded(&self) -> u64 {
        self.discarded
    }

    /// Counts a reply that was accepted but never delivered.
    pub fn count_discarded(&mut self) {
        self.discarded += 1;
    }

    pub fn close(&mut self) {
        self.phase = Phase::Closed;
    }

    /// Checks that `kind` may be sent now and moves to the phase after it.
    /// `fresh` is a new random id (nonzero), used when `kind` expects a
    /// reply. On success returns the ids the frame carries; on error the
    /// phase is unchanged.
    pub fn begin(&mut self, kind: Kind, fresh: u64) -> Result<Stamp, Error> {
        let refuse = |what: &str| {
            Error::new(
                ErrorKind::State,
                format!(
                    "cannot send {} to the child: {what}",
                    kind.name().replace('_', " ")
                ),
            )
        };
        let (next, stamp) = match (kind, self.phase) {
            (Kind::Exec, Phase::Idle) => (
                Phase::Waiting {
                    req: fresh,
                    prev: 0,
                },
                Stamp { id: fresh, re: 0 },
            ),
            (Kind::File, Phase::Idle) => (
                Phase::Transfer { req: fresh },
                Stamp { id: fresh, re: 0 },
            ),
            (
                Kind::Exec | Kind::File,
                Phase::Waiting { .. } | Phase::Serving { .. } | Phase::Transfer { .. },
            ) => {
                return Err(refuse(
                    "the previous request has not been answered (interrupt the child and drain its events, or replace it)",
                ))
            }
            (Kind::ToolResult | Kind::ToolError, Phase::Serving { call, req }) => (
                Phase::Waiting { req: fresh, prev: req },
                Stamp { id: fresh, re: call },
            ),
            (
                Kind::ToolResult | Kind::ToolError,
                Phase::Idle | Phase::Waiting { .. } | Phase::Transfer { .. },
            ) => return Err(refuse("no tool call is waiting for a reply")),
            (Kind::Setup, Phase::Idle) => (Phase::Idle, Stamp { id: 0, re: 0 }),
            (
                Kind::Setup,
                Phase::Waiting { .. } | Phase::Serving { .. } | Phase::Transfer { .. },
            ) => return Err(refuse("the child is busy")),
            (Kind::Shutdown, p) if self.is_running() => (p, Stamp { id: 0, re: 0 }),
            (
                Kind::Exec
                | Kind::File
                | Kind::ToolResult
                | Kind::ToolError
                | Kind::Setup
                | Kind::Shutdown,
                _,
            ) => {
                return Err(Error::new(
                    ErrorKind::NotRunning,
                    "the child process is not running",
                ))
            }
            (other, _) => {
                return Err(Error::new(
                    ErrorKind::Input,
                    format!("the host does not send '{}' messages", other.name()),
                ))
            }
        };
        self.phase = next;
        Ok(stamp)
    }

    /// Puts back the phase before a `begin` whose frame was never sent.
    pub fn rollback(&mut self, before: Phase) {
        self.phase = before;
    }

    /// Handles one frame from the child.
    pub fn on_frame(&mut self, f: Frame) -> Step {
        if self.phase == Phase::Closed {
            return Step::Nothing;
        }
        if f.kind == Kind::Exit {
            self.exit_report = serde_json::from_slice(&f.payload).ok();
            return Step::Nothing;
        }
        match (self.phase, f.kind) {
            (Phase::Launching, Kind::LaunchReport) => {
                match serde_json::from_slice::<LaunchReport>(&f.payload) {
                    Ok(r) => {
                        self.report = r;
                        self.phase = Phase::Hello;
                        Step::Nothing
                    }
                    Err(e) => Step::Violation(format!("invalid launch report: {e}")),
                }
            }
            (Phase::Launching, Kind::LaunchError) => {
                match serde_json::from_slice::<LaunchFailure>(&f.payload) {
                    Ok(failure) => Step::LaunchFailed(failure),
                    Err(e) => Step::Violation(format!("unreadable launch failure report: {e}")),
                }
            }
            (Phase::Hello, Kind::Hello) => {
                if frame::hello_matches(&f.payload, &self.token) {
                    self.phase = Phase::Idle;
                    Step::Ready(self.report.clone())
                } else {
                    Step::Violation(
                        "IPC authentication failed: the child's hello did not carry the session token"
                            .into(),
                    )
                }
            }
            (
                Phase::Idle
                | Phase::Waiting { .. }
                | Phase::Serving { .. }
                | Phase::Transfer { .. },
                Kind::Result | Kind::Error | Kind::ToolCall | Kind::Plot | Kind::FileReply,
            ) => self.on_reply(f),
            (phase, kind) => Step::Violation(format!(
                "unexpected '{}' message from the child{}",
                kind.name(),
                match phase {
                    Phase::Launching => " before the launch report",
                    Phase::Hello => " before its hello",
                    _ => "",
                }
            )),
        }
    }

    fn on_reply(&mut self, f: Frame) -> Step {
        let answers = match (self.phase, f.kind) {
            (Phase::Transfer { req }, Kind::FileReply) => f.re == req,
            (_, Kind::FileReply) | (Phase::Transfer { .. }, _) => false,
            (Phase::Waiting { req, prev }, _) => f.re == req || (prev != 0 && f.re == prev),
            (Phase::Serving { req, .. }, _) => f.re == req,
            _ => false,
        };
        if !answers || f.re == 0 {
            self.discarded += 1;
            return Step::Discarded;
        }
        self.phase = match f.kind {
            Kind::ToolCall => Phase::Serving {
                call: f.id,
                req: f.re,
            },
            // A plot comes before the answer it belongs to.
            Kind::Plot => self.phase,
            _ => Phase::Idle,
        };
        Step::Reply {
            kind: f.kind,
            payload: f.payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::hello_payload;

    fn frame(kind: Kind, id: u64, re: u64, payload: &[u8]) -> Frame {
        Frame {
            kind,
            id,
            re,
            payload: payload.to_vec(),
        }
    }

    fn running() -> Session {
        let mut s = Session::new(b"tok");
        assert_eq!(
            s.on_frame(frame(Kind::LaunchReport, 0, 0, br#"{"layers":[]}"#)),
            Step::Nothing
        );
        assert_eq!(s.phase(), Phase::Hello);
        let hello = hello_payload(b"tok");
        assert!(matches!(
            s.on_frame(frame(Kind::Hello, 0, 0, &hello)),
            Step::Ready(_)
        ));
        assert_eq!(s.phase(), Phase::Idle);
        s
    }

    fn reply(kind: Kind, payload: &[u8]) -> Step {
        Step::Reply {
            kind,
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn a_wrong_token_is_refused() {
        let mut s = Session::new(b"tok");
        s.on_frame(frame(Kind::LaunchReport, 0, 0, br#"{"layers":[]}"#));
        let step = s.on_frame(frame(Kind::Hello, 0, 0, &hello_payload(b"tak")));
        assert!(matches!(step, Step::Violation(m) if m.contains("authentication")));
    }

    #[test]
    fn replies_must_come_in_order_and_after_their_stage() {
        let mut s = Session::new(b"tok");
        assert!(matches!(
            s.on_frame(frame(Kind::Result, 0, 0, b"")),
            Step::Violation(_)
        ));
        let mut s = running();
        assert!(matches!(
            s.on_frame(frame(Kind::LaunchReport, 0, 0, b"{}")),
            Step::Violation(_)
        ));
        assert!(matches!(
            s.on_frame(frame(Kind::Exec, 1, 0, b"")),
            Step::Violation(_)
        ));
    }

    #[test]
    fn an_exec_is_answered_once() {
        let mut s = running();
        let st = s.begin(Kind::Exec, 41).unwrap();
        assert_eq!(st, Stamp { id: 41, re: 0 });
        assert_eq!(s.phase().name(), "busy");
        // A guess at the id, then the real answer, then a duplicate.
        assert_eq!(
            s.on_frame(frame(Kind::Result, 0, 42, b"forged")),
            Step::Discarded
        );
        assert_eq!(
            s.on_frame(frame(Kind::Result, 0, 41, b"v")),
            reply(Kind::Result, b"v")
        );
        assert_eq!(s.phase(), Phase::Idle);
        assert_eq!(
            s.on_frame(frame(Kind::Result, 0, 41, b"again")),
            Step::Discarded
        );
        // The next exec does not accept what answered the last one.
        s.begin(Kind::Exec, 77).unwrap();
        assert_eq!(
            s.on_frame(frame(Kind::Error, 0, 41, b"old")),
            Step::Discarded
        );
        assert_eq!(
            s.on_frame(frame(Kind::Error, 0, 77, b"e")),
            reply(Kind::Error, b"e")
        );
        assert_eq!(s.discarded(), 3);
    }

    #[test]
    fn tool_calls_chain_requests() {
        let mut s = running();
        s.begin(Kind::Exec, 10).unwrap();
        assert_eq!(
            s.on_frame(frame(Kind::ToolCall, 5, 10, b"c")),
            reply(Kind::ToolCall, b"c")
        );
        assert_eq!(s.phase(), Phase::Serving { call: 5, req: 10 });
        // The host owes a tool reply: nothing else may be sent.
        assert!(s.begin(Kind::Exec, 11).is_err());
        let st = s.begin(Kind::ToolResult, 12).unwrap();
        assert_eq!(st, Stamp { id: 12, re: 5 });
        assert_eq!(
            s.on_frame(frame(Kind::Result, 0, 99, b"guess")),
            Step::Discarded
        );
        assert_eq!(
            s.on_frame(frame(Kind::ToolCall, 6, 12, b"c2")),
            reply(Kind::ToolCall, b"c2")
        );
        assert_eq!(s.phase(), Phase::Serving { call: 6, req: 12 });
        s.begin(Kind::ToolError, 13).unwrap();
        // The request before the first call is no longer answerable.
        assert_eq!(
            s.on_frame(frame(Kind::Result, 0, 10, b"old")),
            Step::Discarded
        );
        assert_eq!(
            s.on_frame(frame(Kind::Result, 0, 13, b"v")),
            reply(Kind::Result, b"v")
        );
        assert_eq!(s.phase(), Phase::Idle);
    }

    #[test]
    fn a_child_interrupted_before_the_tool_reply_arrived_answers_the_request_before() {
        let mut s = running();
        s.begin(Kind::Exec, 10).unwrap();
        s.on_frame(frame(Kind::ToolCall, 5, 10, b"c"));
        // The host replies while the child, interrupted, already answers
        // the exec: the reply crosses the child's error.
        s.begin(Kind::ToolError, 11).unwrap();
        assert_eq!(
            s.on_frame(frame(Kind::Error, 0, 10, b"interrupted")),
            reply(Kind::Error, b"interrupted")
        );
        assert_eq!(s.phase(), Phase::Idle);
        assert_eq!(
            s.on_frame(frame(Kind::Error, 0, 11, b"late")),
            Step::Discarded
        );
    }

    #[test]
    fn an_interrupted_child_may_answer_instead_of_waiting_for_its_tool() {
        let mut s = running();
        s.begin(Kind::Exec, 10).unwrap();
        s.on_frame(frame(Kind::ToolCall, 5, 10, b"c"));
        assert_eq!(
            s.on_frame(frame(Kind::Error, 0, 10, b"interrupted")),
            reply(Kind::Error, b"interrupted")
        );
        assert_eq!(s.phase(), Phase::Idle);
        assert!(s.begin(Kind::ToolResult, 11).is_err());
    }

    #[test]
    fn requests_that_do_not_fit_the_phase_are_refused_without_a_change() {
        let mut s = Session::new(b"tok");
        assert_eq!(
            s.begin(Kind::Exec, 1).unwrap_err().kind,
            ErrorKind::NotRunning
        );
        let mut s = running();
        assert_eq!(
            s.begin(Kind::ToolResult, 1).unwrap_err().kind,
            ErrorKind::State
        );
        assert_eq!(s.begin(Kind::Result, 1).unwrap_err().kind, ErrorKind::Input);
        assert_eq!(s.begin(Kind::Setup, 9).unwrap(), Stamp { id: 0, re: 0 });
        let before = s.phase();
        s.begin(Kind::Exec, 2).unwrap();
        s.rollback(before);
        assert_eq!(s.phase(), Phase::Idle);
        assert_eq!(s.begin(Kind::Shutdown, 3).unwrap(), Stamp { id: 0, re: 0 });
    }

    #[test]
    fn plots_come_before_the_answer_and_leave_the_phase_alone() {
        let mut s = running();
        s.begin(Kind::Exec, 10).unwrap();
        assert_eq!(
            s.on_frame(frame(Kind::Plot, 0, 10, b"png")),
            reply(Kind::Plot, b"png")
        );
        assert_eq!(s.phase(), Phase::Waiting { req: 10, prev: 0 });
        assert_eq!(
            s.on_frame(frame(Kind::Plot, 0, 11, b"png")),
            Step::Discarded
        );
        assert_eq!(
            s.on_frame(frame(Kind::Result, 0, 10, b"v")),
            reply(Kind::Result, b"v")
        );
        // Once answered, a plot for that request answers nothing.
        assert_eq!(
            s.on_frame(frame(Kind::Plot, 0, 10, b"late")),
            Step::Discarded
        );
        assert_eq!(s.discarded(), 2);
    }

    #[test]
    fn a_file_request_is_answered_by_one_file_reply_only() {
        let mut s = running();
        let st = s.begin(Kind::File, 20).unwrap();
        assert_eq!(st, Stamp { id: 20, re: 0 });
        assert_eq!(s.phase().name(), "busy");
        assert!(s.begin(Kind::Exec, 21).is_err());
        assert!(s.begin(Kind::File, 21).is_err());
        assert!(s.begin(Kind::Setup, 21).is_err());
        // Replies of another kind, or naming another request, are dropped.
        for kind in [Kind::Result, Kind::Error, Kind::ToolCall, Kind::Plot] {
            assert_eq!(s.on_frame(frame(kind, 0, 20, b"x")), Step::Discarded);
        }
        assert_eq!(
            s.on_frame(frame(Kind::FileReply, 0, 19, b"x")),
            Step::Discarded
        );
        assert_eq!(
            s.on_frame(frame(Kind::FileReply, 0, 20, b"ok")),
            reply(Kind::FileReply, b"ok")
        );
        assert_eq!(s.phase(), Phase::Idle);
        // A file reply never answers an exec.
        s.begin(Kind::Exec, 30).unwrap();
        assert_eq!(
            s.on_frame(frame(Kind::FileReply, 0, 30, b"x")),
            Step::Discarded
        );
        assert_eq!(s.discarded(), 6);
    }

    #[test]
    fn exit_reports_are_kept_in_any_phase() {
        let mut s = running();
        s.on_frame(frame(Kind::Exit, 0, 0, br#"{"code":3,"signal":null}"#));
        assert_eq!(
            s.exit_report(),
            Some(ExitReport {
                code: Some(3),
                signal: None,
                limit: None
            })
        );
    }
}
