import Foundation
import Testing

// The tags of the DurableTests suites, in one place, and the fast subset they define.
//
// `swift test` (6.3) selects tests only by regular expressions over their names (`--filter`, `--skip`), not by
// tag, so the fast subset is chosen by an environment variable instead: with `DURABLE_FAST=1`, everything tagged
// `.crash`, `.interop` or `.slow` is skipped (reported as skipped, not passed). Swift Testing cannot skip by tag
// either, so each suite or test given one of these tags also gets `.skippedInFastRuns`; a test inside a suite
// that already has it needs only the tag.

extension Tag {
    /// Starts worker processes and SIGKILLs them (the suites under Crash/, and single tests elsewhere): real
    /// process deaths, slow and the most sensitive to a loaded machine.
    @Tag static var crash: Self
    /// Needs DBOS Python 3.4.0 (`.venv-dbos`, see scripts/test); skipped without it anyway.
    @Tag static var interop: Self
    /// Takes more than about 10 s on its own, as `scripts/test --no-parallel` times it (long sleeps, waits for
    /// heartbeats, deadlines and fallback polls, or many cases); a parallel run's times say little, since every
    /// test there waits for the machine.
    @Tag static var slow: Self
}

/// Whether this run is the fast subset: `DURABLE_FAST` set to `1`, `true` or `yes`.
enum FastRun {
    static let isOn: Bool = {
        let value = ProcessInfo.processInfo.environment["DURABLE_FAST"]?.lowercased()
        return value == "1" || value == "true" || value == "yes"
    }()
}

extension Trait where Self == ConditionTrait {
    /// Skips the suite or test when ``FastRun/isOn``: goes with the tags `.crash`, `.interop` and `.slow`.
    static var skippedInFastRuns: Self {
        .disabled(if: FastRun.isOn, "DURABLE_FAST=1 leaves out the .crash, .interop and .slow tests")
    }
}
