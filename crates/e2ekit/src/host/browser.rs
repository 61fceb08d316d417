//! Opening a URL in the person's browser.

use crate::error::{Error, Result};

/// Opens `url` in the default browser (`$BROWSER` if set, else `xdg-open` on Linux, `open` on
/// macOS, `rundll32` on Windows). Errors clearly when no opener exists, e.g. on a headless machine.
pub fn open_in_browser(url: &str) -> Result<()> {
    // $BROWSER is the conventional override (and lets tests avoid opening a real browser).
    let custom = std::env::var("BROWSER").ok().filter(|b| !b.is_empty());
    let (program, args): (&str, Vec<&str>) = if let Some(browser) = custom.as_deref() {
        (browser, vec![url])
    } else if cfg!(target_os = "macos") {
        ("open", vec![url])
    } else if cfg!(target_os = "windows") {
        ("rundll32", vec!["url.dll,FileProtocolHandler", url])
    } else {
        ("xdg-open", vec![url])
    };
    let status = std::process::Command::new(program)
        .args(&args)
        .status()
        .map_err(|e| {
            Error::io(
                format!("opening {url} with {program} (no browser opener on this machine? open the URL by hand)"),
                e,
            )
        })?;
    if !status.success() {
        return Err(Error::HostTool {
            tool: program.to_string(),
            reason: format!("could not open {url} ({status}); open the URL by hand"),
        });
    }
    Ok(())
}
