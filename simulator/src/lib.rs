//! callgrid-sim: the capacity planner's simulator.
//!
//! ```text
//!  history (contacts.csv | interval reports) ──► calibrate ──► scenario.toml
//!  scenario.toml (+ [calendar]) ──► scenario (parse, validate, locate errors by line)
//!                        │
//!                        ▼
//!  sample (seeded Pcg64 draws) ──► engine (discrete-event loop driving callgrid-domain)
//!                                       │ events → domain metrics (per site)
//!                                       │        → chain (each contact once), contacts (records)
//!                                       ▼
//!                                   report (table, CSV, JSON, SVG), html (one page per run)
//!  erlang (closed forms) + load (expected rates) ─► validate, staff (per-interval minimum)
//!  staff ─► shifts (least-cost shift plan, microlp) ; replicate ─► compare (what-if)
//!  bench (+ bench_ciw: the day beside ciw)
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
pub mod domain_config;
pub mod engine;
pub mod erlang;
pub mod html;
pub mod live;
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
