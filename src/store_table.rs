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

/// The in-process store never waits: its futures are ready at once.
impl AsyncVarStore for SessionStore {
    fn call(&self, request: Request) -> impl Future<Output = Result<Response>> + Send {
        ready(VarStore::call(self, request))
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
