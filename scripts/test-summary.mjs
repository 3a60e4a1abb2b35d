// Prints vitest's JSON report as one plain closing line: "N passed, N failed, N skipped".
// Exits non-zero when the report is missing or no test ran.
import { readFileSync } from 'node:fs';

const file = process.argv[2] ?? '.tmp/vitest.json';
let report;
try {
  report = JSON.parse(readFileSync(file, 'utf8'));
} catch {
  console.log('0 passed, 1 failed');
  console.error(`test-summary: no test report at ${file}`);
  process.exit(1);
}
const passed = report.numPassedTests ?? 0;
// failed tests, plus files that failed without a failed test (an import error, a failing hook):
// vitest's numFailedTestSuites also counts each describe block around a failed test
const brokenFiles = (report.testResults ?? []).filter(
  (f) => f.status === 'failed' && !(f.assertionResults ?? []).some((a) => a.status === 'failed'),
).length;
const failed = (report.numFailedTests ?? 0) + brokenFiles;
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(passed > 0 && failed === 0 ? 0 : 1);
