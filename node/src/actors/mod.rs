//! actix actors: thin shells around the `callgrid-domain` state machines.
//!
//! - [`site`] — the Site actor, supervised (restarted from the configuration and the
//!   replicated state if it fails): the domain's queues, agents and contacts, offers with
//!   timeouts, streams to desktops, and the worker that turns due callbacks into outbound
//!   contacts.

pub mod site;
