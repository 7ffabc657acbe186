//! callgrid-node
