//! The in-process store's operation table: [`VarStore`] and
//! [`AsyncVarStore`] for [`SessionStore`], each request dispatched to the
//! inherent method of the same name (which does the work, without the
//! request's allocations when called directly).

use std::future::{Future, ready};

use crate::ops::{Request, Response, WatchTarget};
use crate::{AsyncVarStore, Result, SessionStore, VarStore, Watch, WatchOptions};

impl VarStore for SessionStore {
    fn call(&self, request: Request) -> Result<Response> {
        Ok(match request {
            Request::CreateSession { session, options } => {
                Response::Session(self.create_session(&session, options)?)
            }
            Request::GetOrCreateSession { session, options } => {
                Response::Session(self.get_or_create_session(&session, options)?)
            }
            Request::GetSession { session } => Response::Session(self.session(&session)?),
            Request::DeleteSession { session } => {
                self.delete_session(&session)?;
                Response::Done
            }
            Request::ListSessions => Response::Sessions(self.list_sessions()),
            Request::Register { session, def } => Response::Registered(self.register(&session, def)?),
            Request::Get { session, variable } => Response::Variable(self.get(&session, &variable)?),
            Request::GetMany { session, variables } => Response::Many(self.get_many(&session, &variables)?),
            Request::ListVariables { session, pattern } => {
                Response::Variables(self.list_variables(&session, pattern.as_deref())?)
            }
            Request::Update {
                session,
                variable,
                value,
                options,
            } => Response::Version(self.update_with(&session, &variable, value, &options)?),
            Request::UpdateMany {
                session,
                items,
                options,
                atomic: true,
            } => Response::Items(
                self.update_atomic(&session, items, &options)?
                    .into_iter()
                    .map(Ok)
                    .collect(),
            ),
            Request::UpdateMany {
                session,
                items,
                options,
                atomic: false,
            } => Response::Items(self.update_best_effort(&session, items, &options)?),
            Request::DeleteVariable { session, variable } => {
                self.delete_variable(&session, &variable)?;
                Response::Done
            }
            Request::Import { session, defs } => Response::Imported(self.import(&session, defs)?),
        })
    }

    fn open_watch(&self, session: &str, target: WatchTarget, opts: WatchOptions) -> Result<Watch> {
        match target {
            WatchTarget::Variables(idents) => self.watch(session, &idents, opts),
            WatchTarget::Session => self.watch_session(session, opts),
        }
    }
}

/// The in-process store never waits: its futures are ready at once — but
/// for a durable store's writes, which wait for the disk.
impl AsyncVarStore for SessionStore {
    fn call(&self, request: Request) -> impl Future<Output = Result<Response>> + Send {
        // A durable store's write waits for its sync (shared by group
        // commit). On a tokio runtime (a server's) it waits on a blocking
        // thread: the runtime's workers go on serving heartbeats and reads,
        // and more writers than workers can share one sync.
        #[cfg(all(feature = "durable", not(loom)))]
        if self.is_durable()
            && request.as_write().is_some()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let store = self.clone();
            let task = rt.spawn_blocking(move || VarStore::call(&store, request));
            return futures_or_ready::Either::Later(task);
        }
        futures_or_ready::Either::Now(ready(VarStore::call(self, request)))
    }

    fn open_watch(
        &self,
        session: &str,
        target: WatchTarget,
        opts: WatchOptions,
    ) -> impl Future<Output = Result<Watch>> + Send {
        ready(VarStore::open_watch(self, session, target, opts))
    }
}

/// The future of [`AsyncVarStore::call`] on a [`SessionStore`]: an answer
/// ready now, or (a durable store's write) a blocking task's.
mod futures_or_ready {
    use std::future::{Future, Ready};
    use std::pin::Pin;
    use std::task::{Context, Poll};

    #[cfg(all(feature = "durable", not(loom)))]
    use crate::Error;
    use crate::Result;
    use crate::ops::Response;

    pub(super) enum Either {
        Now(Ready<Result<Response>>),
        #[cfg(all(feature = "durable", not(loom)))]
        Later(tokio::task::JoinHandle<Result<Response>>),
    }

    impl Future for Either {
        type Output = Result<Response>;
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            match self.get_mut() {
                Either::Now(r) => Pin::new(r).poll(cx),
                #[cfg(all(feature = "durable", not(loom)))]
                Either::Later(task) => Pin::new(task).poll(cx).map(|r| {
                    r.unwrap_or_else(|e| {
                        Err(Error::OutcomeUnknown {
                            session: String::new(),
                            operation: "a write".into(),
                            reason: format!("the write's task ended before answering: {e}"),
                        })
                    })
                }),
            }
        }
    }
}
