/**
 * The SDK's wire types (src/protocol.ts) against the edge's AsyncAPI document
 * (docs/asyncapi-ws.json, which a Rust test keeps equal to the one the edge generates
 * and serves at /asyncapi.json): every frame and command the document names is
 * declared with the same fields, the same required and optional ones, the same
 * nullability and the same enum values, down through the shared schemas (Chat,
 * Message, ...); and every close code is known. A new server event, field or error
 * code without SDK support fails here, with no server running.
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import ts from "typescript";

import { CloseCode, SERVER_FRAME_TYPES } from "../src/protocol.js";

/** A JSON schema, as the document spells it. */
interface Schema {
  $ref?: string;
  allOf?: Schema[];
  anyOf?: Schema[];
  oneOf?: Schema[];
  type?: string | string[];
  const?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  additionalProperties?: Schema | boolean;
}

interface Document {
  components: { messages: Record<string, { name: string; payload: Schema }>; schemas: Record<string, Schema> };
  channels: { ws: { "x-close-codes": { code: number }[] } };
}

// Compiled to build-test/test/: the repository root is three levels up.
const root = new URL("../../../../", import.meta.url);
const document = JSON.parse(readFileSync(new URL("docs/asyncapi-ws.json", root), "utf8")) as Document;
const protocolFile = fileURLToPath(new URL("clients/typescript/src/protocol.ts", root));

const program = ts.createProgram([protocolFile], { strict: true, noEmit: true, types: [] });
const checker = program.getTypeChecker();

/** An exported type of protocol.ts, by name. */
function exported(name: string): ts.Type {
  const file = program.getSourceFile(protocolFile);
  const module = file && checker.getSymbolAtLocation(file);
  const symbol = module && checker.getExportsOfModule(module).find((s) => s.name === name);
  assert.ok(symbol, `src/protocol.ts exports no ${name}`);
  return checker.getDeclaredTypeOfSymbol(symbol);
}

/** The union's members by the literal of their `type` field. */
function byTag(union: ts.Type): Map<string, ts.Type> {
  const members = new Map<string, ts.Type>();
  for (const member of union.isUnion() ? union.types : [union]) {
    const tag = member.getProperty("type");
    const literal = tag && checker.getTypeOfSymbol(tag);
    if (literal?.isStringLiteral()) members.set(literal.value, member);
  }
  return members;
}

/** Follows `$ref` and one-element `allOf` wrappers to the schema they name. */
function resolve(schema: Schema): Schema {
  if (schema.$ref) {
    const name = schema.$ref.replace("#/components/schemas/", "");
    const target = document.components.schemas[name];
    assert.ok(target, `dangling $ref ${schema.$ref}`);
    return resolve(target);
  }
  if (schema.allOf?.length === 1 && schema.allOf[0]) return resolve(schema.allOf[0]);
  return schema;
}

/** Whether a schema admits null, and the schema without it. */
function splitNull(schema: Schema): [boolean, Schema] {
  const types = Array.isArray(schema.type) ? schema.type : [];
  if (types.includes("null")) {
    const rest = types.filter((t) => t !== "null");
    return [true, { ...schema, type: rest.length === 1 ? rest[0] : rest }];
  }
  const others = schema.anyOf?.filter((s) => s.type !== "null");
  if (schema.anyOf && others?.length === 1 && others[0]) return [true, others[0]];
  return [false, schema];
}

/** The enum values of a schema that is a `oneOf` of string constants. */
function enumValues(schema: Schema): string[] | undefined {
  const values = schema.oneOf?.map((s) => s.const);
  return values?.every((v): v is string => typeof v === "string") ? values : undefined;
}

/** Which way a shape travels: `in` is what the SDK reads, `out` what it writes. */
type Direction = "in" | "out";

/**
 * Compares a TypeScript type with a schema, adding every difference to `problems`.
 * What the SDK reads must match exactly; what it writes may be narrower (it may
 * always send a field the server lets it leave out).
 */
function compare(
  schema: Schema,
  type: ts.Type,
  at: string,
  direction: Direction,
  problems: string[],
  required = true,
): void {
  const [nullable, bare] = splitNull(resolve(schema));
  const tsNullable = (type.isUnion() ? type.types : [type]).some((t) => t.flags & ts.TypeFlags.Null);
  if (tsNullable && !nullable) problems.push(`${at}: the SDK allows null, the document does not`);
  // A field the server may leave out is left out rather than null (serde skips it).
  if (nullable && !tsNullable && required && direction === "in") {
    problems.push(`${at}: may be null, the SDK does not say so`);
  }
  const target = resolve(bare);
  const value = checker.getNonNullableType(type);
  const shown = checker.typeToString(value);
  const literals = (value.isUnion() ? value.types : [value]).map((t) => (t.isStringLiteral() ? t.value : undefined));
  const values = enumValues(target);
  if (target.const !== undefined) {
    if (literals.length !== 1 || literals[0] !== target.const) problems.push(`${at}: is "${target.const}", SDK ${shown}`);
  } else if (values) {
    const same = literals.length === values.length && values.every((v) => literals.includes(v));
    if (!same) problems.push(`${at}: is one of ${values.join(" | ")}, SDK ${shown}`);
  } else if (target.properties || target.oneOf) {
    compareObject(target, value, at, direction, problems);
  } else if (target.type === "object" && typeof target.additionalProperties === "object") {
    const entry = value.getStringIndexType();
    if (!entry) problems.push(`${at}: is a map, SDK ${shown}`);
    else compare(target.additionalProperties, entry, `${at}[key]`, direction, problems);
  } else if (target.type === "array" && target.items) {
    const item = checker.isArrayType(value) ? checker.getTypeArguments(value as ts.TypeReference)[0] : undefined;
    if (!item) problems.push(`${at}: is an array, SDK ${shown}`);
    else compare(target.items, item, `${at}[]`, direction, problems);
  } else {
    const flags: Record<string, ts.TypeFlags> = {
      string: ts.TypeFlags.StringLike,
      integer: ts.TypeFlags.NumberLike,
      number: ts.TypeFlags.NumberLike,
      boolean: ts.TypeFlags.BooleanLike,
    };
    const wanted = typeof target.type === "string" ? flags[target.type] : undefined;
    if (wanted === undefined) problems.push(`${at}: the test does not know schema ${JSON.stringify(target)}`);
    else if (!(value.flags & wanted)) problems.push(`${at}: is ${String(target.type)}, SDK ${shown}`);
  }
}

/** Compares an object's fields; a payload's one `oneOf` variant adds its own. */
function compareObject(schema: Schema, type: ts.Type, at: string, direction: Direction, problems: string[]): void {
  const variants = schema.oneOf ?? [];
  assert.ok(variants.length <= 1, `${at}: a payload narrowed to one variant has at most one oneOf`);
  const properties = { ...schema.properties, ...variants[0]?.properties };
  const required = new Set([...(schema.required ?? []), ...(variants[0]?.required ?? [])]);
  const declared = new Map(checker.getPropertiesOfType(type).map((p) => [p.name, p]));
  for (const [name, field] of Object.entries(properties)) {
    const property = declared.get(name);
    if (!property) {
      problems.push(`${at}.${name}: missing from the SDK`);
      continue;
    }
    const optional = (property.flags & ts.SymbolFlags.Optional) !== 0;
    if (optional && required.has(name)) problems.push(`${at}.${name}: required, the SDK makes it optional`);
    if (!optional && !required.has(name) && direction === "in") {
      problems.push(`${at}.${name}: may be absent, the SDK makes it required`);
    }
    compare(field, checker.getTypeOfSymbol(property), `${at}.${name}`, direction, problems, required.has(name));
  }
  for (const name of declared.keys()) {
    if (!(name in properties)) problems.push(`${at}.${name}: the SDK declares a field the document does not have`);
  }
}

/** Checks every message with `prefix` against the union's member of the same `type`. */
function checkMessages(prefix: string, union: ts.Type, direction: Direction): void {
  const members = byTag(union);
  const names = Object.entries(document.components.messages)
    .filter(([id]) => id.startsWith(prefix))
    .map(([, message]) => message.name);
  assert.deepEqual([...members.keys()].sort(), [...names].sort(), `the ${prefix} messages and the SDK's types differ`);
  const problems: string[] = [];
  for (const [id, message] of Object.entries(document.components.messages)) {
    const member = members.get(message.name);
    if (id.startsWith(prefix) && member) compareObject(message.payload, member, message.name, direction, problems);
  }
  assert.deepEqual(problems, [], `src/protocol.ts differs from docs/asyncapi-ws.json:\n${problems.join("\n")}`);
}

test("every frame of the document is a ServerFrame with the same fields", () => {
  checkMessages("server.", exported("ServerFrame"), "in");
  const names = Object.entries(document.components.messages)
    .filter(([id]) => id.startsWith("server."))
    .map(([, message]) => message.name);
  assert.deepEqual([...SERVER_FRAME_TYPES].sort(), names.sort(), "SERVER_FRAME_TYPES lists every frame");
});

test("every command of the document is a Command with the same fields", () => {
  checkMessages("client.", exported("Command"), "out");
});

test("the SDK knows every close code", () => {
  const codes = document.channels.ws["x-close-codes"].map((c) => c.code).sort();
  assert.deepEqual(Object.values(CloseCode).sort(), codes);
});
