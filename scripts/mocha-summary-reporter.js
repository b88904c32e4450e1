// Mocha reporter: the spec reporter's output plus one plain closing line
// "<label>: N passed, N failed[, N skipped]" that CI can read.
'use strict';
const Mocha = require('mocha');
const { Spec } = Mocha.reporters;
const { EVENT_RUN_END } = Mocha.Runner.constants;

class SummaryReporter extends Spec {
  constructor(runner, options) {
    super(runner, options);
    const label = (options && options.reporterOptions && options.reporterOptions.label) || process.env.QUANTSCOPE_TEST_LABEL || 'tests';
    runner.once(EVENT_RUN_END, () => {
      const s = runner.stats || {};
      const skipped = s.pending || 0;
      const line = `${label}: ${s.passes || 0} passed, ${s.failures || 0} failed` + (skipped ? `, ${skipped} skipped` : '');
      // The spec reporter registered its epilogue first, so this prints after it.
      Mocha.reporters.Base.consoleLog(line);
    });
  }
}
module.exports = SummaryReporter;
