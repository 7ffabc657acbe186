//! callgrid-sim
