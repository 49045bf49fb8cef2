//! The kn command-line tool
