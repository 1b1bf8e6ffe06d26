// Parses each AsyncAPI document named on the command line with the official parser
// (@asyncapi/parser, which validates against the AsyncAPI JSON Schema and runs its
// Spectral rules) and exits 1 when any diagnostic has severity error, printing every
// diagnostic with its path so a failing test says what to fix.
//
// Usage: node scripts/asyncapi-lint/lint.mjs docs/asyncapi-nats.json [more.json ...]
import { readFile } from "node:fs/promises";
import parserPackage from "@asyncapi/parser";

const { Parser, DiagnosticSeverity } = parserPackage;
const severityNames = Object.fromEntries(Object.entries(DiagnosticSeverity).map(([name, value]) => [value, name]));

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node lint.mjs <asyncapi.json>...");
  process.exit(2);
}

const parser = new Parser();
let failed = false;
for (const file of files) {
  const text = await readFile(file, "utf8");
  const { document, diagnostics } = await parser.parse(text, { source: file });
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  for (const d of diagnostics) {
    const where = d.path.length > 0 ? d.path.join(".") : "(document)";
    console.log(`${file}: ${severityNames[d.severity] ?? d.severity} ${d.code} at ${where}: ${d.message}`);
  }
  if (document === undefined || errors.length > 0) {
    failed = true;
    console.log(`${file}: FAILED (${errors.length} errors)`);
  } else {
    console.log(`${file}: ok (AsyncAPI ${document.version()}, ${diagnostics.length} diagnostics below error)`);
  }
}
process.exit(failed ? 1 : 0);
