//! callgrid-domain
