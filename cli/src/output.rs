//! Standard output for the commands' answers. A reader that closes the pipe early
//! (`chronicle search … | head`) ends the program quietly with success, as `head` asked: Rust's
//! `println!` would panic there instead.

use std::io::{ErrorKind, Write};

/// Writes to standard output; exits 0 when the reader has gone away, 1 on any other failure.
pub(crate) fn write(arguments: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout.write_fmt(arguments) {
        if error.kind() == ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {error}");
        std::process::exit(1);
    }
}

/// `print!` that ends quietly when standard output's reader has gone away.
macro_rules! out {
    ($($argument:tt)*) => {
        $crate::output::write(format_args!($($argument)*))
    };
}

/// `println!` that ends quietly when standard output's reader has gone away.
macro_rules! outln {
    () => {
        $crate::output::write(format_args!("\n"))
    };
    ($($argument:tt)*) => {
        $crate::output::write(format_args!("{}\n", format_args!($($argument)*)))
    };
}
