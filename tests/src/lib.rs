//! callgrid-tests
