//! callgrid-sim: the capacity planner's simulator.
//!
//! ```text
//!  scenario.toml ──► scenario (parse, validate, locate errors by line)
//!                        │
//!                        ▼
//!  sample (seeded Pcg64 draws) ──► engine (discrete-event loop driving callgrid-domain)
//!                                       │ events → domain metrics
//!                                       ▼
//!                                   report (table, CSV, JSON, SVG)
//!  erlang (Erlang C / A closed forms) ─► validate (M/M/c(+M) vs closed form), staff (search)
//! ```
//!
//! The routing decisions are not made here: the engine feeds arrivals, timers and agent
//! actions into `callgrid-domain` and acts on the effects it returns, so what a planner
//! simulates is what a site node does in production.

pub mod agenda;
pub mod bench;
pub mod bench_ciw;
pub mod calendar;
pub mod calibrate;
pub mod calibrate_intervals;
pub mod chain;
pub mod compare;
pub mod contacts;
pub mod engine;
pub mod erlang;
pub mod html;
pub mod load;
pub mod replicate;
pub mod report;
pub mod sample;
pub mod scenario;
pub mod shifts;
pub mod staff;
pub mod stats;
pub mod svg;
pub mod validate;
