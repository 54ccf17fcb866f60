/**
 * A small, strict, namespace-aware XML 1.0 parser for PSKC files.
 *
 * Why not a general parser: a seed file comes from outside the bank, and
 * the classic XML attacks (external entities reading local files or URLs,
 * "billion laughs" entity expansion) all live in the DTD. PSKC needs no DTD,
 * so this parser has none: any <!DOCTYPE ...> or <!ENTITY ...> is refused
 * (`unsafe_xml`) before anything else happens, and the only entity
 * references it knows are XML's five predefined ones and character
 * references (XML 1.0 §4.6, §4.1). It never opens a file or a URL.
 *
 * Well-formedness is checked (XML 1.0 §2.1: one root, tags nest and match,
 * attributes quoted and unique; Namespaces in XML 1.0 §5: every prefix
 * bound, expanded attribute names unique). Validation against the schema is
 * the reader's job, element by element.
 *
 * Every step is linear: names, values and text are found with indexOf and
 * sticky regexes, duplicate attributes with sets, prefixes by walking at
 * most maxDepth scopes; and a hostile file is stopped by the limits in
 * XML_LIMITS before it can cost much memory.
 *
 * Why not fast-xml-parser (listed in package.json, imported nowhere): it
 * matches names by prefix, not by namespace URI (PSKC files bind the
 * namespace to pskc:, to other prefixes or as the default), and its 5.x
 * options process DOCTYPE entities by default (processEntities, with
 * expansion limits), where this parser has no code that could expand one.
 */
import { NS_XML, NS_XMLNS, XML_LIMITS, type XmlLimits } from "./constants.js";
import { PskcError } from "./types.js";

export interface XmlAttr {
  ns: string;
  local: string;
  /** As written, with its prefix. */
  name: string;
  value: string;
}

export interface XmlElement {
  /** Namespace URI; "" for none. */
  ns: string;
  local: string;
  /** As written, with its prefix. */
  name: string;
  /** Without the xmlns declarations. */
  attrs: XmlAttr[];
  children: XmlElement[];
  /** Character data directly inside this element, concatenated. */
  text: string;
  line: number;
}

const WS = /[ \t\n]*/y;
const NAME = /[A-Za-z_:\u00C0-\uD7FF\uE000-\uFFFD][-.0-9A-Za-z_:\u00B7\u00C0-\uD7FF\uE000-\uFFFD]*/y;
/** XML 1.0 §2.2 Char, minus what no PSKC file contains (surrogates are checked pairwise by JS). */
const BAD_CHAR = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/;
const PREDEFINED: Record<string, string> = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" };

/**
 * One open element's own namespace declarations, chained to its parent's: a
 * prefix is resolved by walking up at most maxDepth scopes, so an element
 * never copies its ancestors' bindings (no cost that grows with them).
 */
type Scope = { decl: Map<string, string> | undefined; parent: Scope | undefined };

function lookup(scope: Scope | undefined, prefix: string): string | undefined {
  for (let s = scope; s; s = s.parent) {
    const v = s.decl?.get(prefix);
    if (v !== undefined) return v;
  }
  return undefined;
}

class Parser {
  pos = 0;
  private lineNo = 1;
  private linePos = 0;

  private elements = 0;
  private attributes = 0;
  private references = 0;

  constructor(
    readonly s: string,
    private readonly limits: XmlLimits,
  ) {}

  line(at = this.pos): number {
    // Positions only move forward, so count incrementally (O(n) overall).
    if (at < this.linePos) {
      let n = 1;
      for (let i = 0; i < at; i++) if (this.s.charCodeAt(i) === 10) n++;
      return n;
    }
    for (let i = this.linePos; i < at; i++) if (this.s.charCodeAt(i) === 10) this.lineNo++;
    this.linePos = at;
    return this.lineNo;
  }

  fail(detail: string, at = this.pos): never {
    throw new PskcError("malformed", `not well-formed XML: ${detail}`, `line ${this.line(at)}`);
  }

  unsafe(detail: string, at = this.pos): never {
    throw new PskcError("unsafe_xml", detail, `line ${this.line(at)}`);
  }

  startsWith(t: string): boolean {
    return this.s.startsWith(t, this.pos);
  }

  skipWs(): boolean {
    WS.lastIndex = this.pos;
    WS.exec(this.s);
    const moved = WS.lastIndex > this.pos;
    this.pos = WS.lastIndex;
    return moved;
  }

  name(): string {
    NAME.lastIndex = this.pos;
    const m = NAME.exec(this.s);
    if (!m) this.fail("a name was expected");
    this.pos = NAME.lastIndex;
    return m[0];
  }

  expect(t: string): void {
    if (!this.startsWith(t)) this.fail(`'${t}' was expected`);
    this.pos += t.length;
  }

  /** A qualified name's [namespace URI, local name] (Namespaces in XML 1.0 §4, §6.2). */
  resolve(scope: Scope, qname: string, isAttr: boolean, at: number): [string, string] {
    const colon = qname.indexOf(":");
    if (colon < 0) return [isAttr ? "" : lookup(scope, "") ?? "", qname];
    const prefix = qname.slice(0, colon);
    const local = qname.slice(colon + 1);
    if (prefix === "" || local === "" || local.includes(":")) this.fail(`bad qualified name ${qname}`, at);
    const uri = lookup(scope, prefix);
    if (uri === undefined) this.fail(`namespace prefix ${prefix} is not declared`, at);
    return [uri, local];
  }

  /** `<!` constructs other than comments and CDATA: the DTD, which PSKC never needs. */
  refuseMarkupDeclaration(): never {
    if (this.startsWith("<!DOCTYPE")) {
      this.unsafe("a DOCTYPE is not allowed in a PSKC file (no DTD, no entities: XXE and entity-expansion protection)");
    }
    if (this.startsWith("<!ENTITY")) this.unsafe("entity declarations are not allowed in a PSKC file");
    this.fail("unexpected '<!'");
  }

  comment(): void {
    const end = this.s.indexOf("-->", this.pos + 4);
    if (end < 0) this.fail("unterminated comment");
    if (this.s.slice(this.pos + 4, end).includes("--")) this.fail("'--' inside a comment");
    this.pos = end + 3;
  }

  pi(): void {
    const start = this.pos;
    this.pos += 2;
    const target = this.name();
    if (target.toLowerCase() === "xml") this.fail("XML declaration not at the start of the document", start);
    const end = this.s.indexOf("?>", this.pos);
    if (end < 0) this.fail("unterminated processing instruction", start);
    this.pos = end + 2;
  }

  xmlDecl(): void {
    const end = this.s.indexOf("?>");
    if (end < 0) this.fail("unterminated XML declaration");
    const decl = this.s.slice(5, end);
    const version = /\bversion\s*=\s*(["'])([^"']*)\1/.exec(decl);
    if (!version || version[2] !== "1.0") this.fail("XML declaration must say version=\"1.0\"");
    const enc = /\bencoding\s*=\s*(["'])([^"']*)\1/.exec(decl);
    if (enc && !/^utf-?8$/i.test(enc[2])) {
      this.fail(`encoding "${enc[2]}" is not supported (UTF-8 only)`);
    }
    this.pos = end + 2;
  }

  /** Text or attribute value: the five predefined entities and character references only. */
  decode(raw: string, at: number): string {
    if (!raw.includes("&")) return raw;
    return raw.replace(/&([^;&<]*)(;?)/g, (whole, ref: string, semi: string) => {
      if (!semi) this.fail("'&' not starting an entity or character reference", at);
      if (++this.references > this.limits.maxReferences) {
        this.unsafe(`more than ${this.limits.maxReferences} character or entity references in the file (PSKC values need none)`, at);
      }
      if (ref.startsWith("#")) {
        const m = /^#(?:x([0-9A-Fa-f]{1,6})|([0-9]{1,7}))$/.exec(ref);
        if (!m) this.fail(`bad character reference &${ref};`, at);
        const cp = m[1] !== undefined ? parseInt(m[1], 16) : parseInt(m[2], 10);
        const ok =
          cp === 0x9 || cp === 0xa || cp === 0xd || (cp >= 0x20 && cp <= 0xd7ff) ||
          (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff);
        if (!ok) this.fail(`character reference &${ref}; is not an XML character`, at);
        return String.fromCodePoint(cp);
      }
      const v = PREDEFINED[ref];
      if (v === undefined) {
        this.unsafe(`entity reference &${ref}; (no entities beyond XML's five predefined ones are allowed)`, at);
      }
      return v;
    });
  }

  attrValue(): string {
    const q = this.s[this.pos];
    if (q !== '"' && q !== "'") this.fail("attribute value must be quoted");
    const start = this.pos + 1;
    const end = this.s.indexOf(q, start);
    if (end < 0) this.fail("unterminated attribute value");
    if (end - start > this.limits.maxAttrValue) this.unsafe(`an attribute value longer than ${this.limits.maxAttrValue} characters`, start);
    const raw = this.s.slice(start, end);
    if (raw.includes("<")) this.fail("'<' in an attribute value", start);
    this.pos = end + 1;
    // XML 1.0 §3.3.3: literal whitespace becomes a space before references are expanded.
    return this.decode(raw.replace(/[\t\n]/g, " "), start);
  }

  document(): XmlElement {
    if (/^<\?xml[ \t\n]/.test(this.s)) this.xmlDecl();
    let root: XmlElement | undefined;
    for (;;) {
      this.skipWs();
      if (this.pos >= this.s.length) break;
      if (this.startsWith("<!--")) this.comment();
      else if (this.startsWith("<?")) this.pi();
      else if (this.startsWith("<!")) this.refuseMarkupDeclaration();
      else if (this.startsWith("<")) {
        if (root) this.fail("content after the root element");
        root = this.element();
      } else this.fail("text outside the root element");
    }
    if (!root) this.fail("no root element");
    return root;
  }

  element(): XmlElement {
    type Frame = { el: XmlElement; scope: Scope; text: string[]; textLength: number };
    const rootScope: Scope = { decl: new Map([["xml", NS_XML]]), parent: undefined };
    const stack: Frame[] = [];
    let root: XmlElement | undefined;
    const addText = (frame: Frame, text: string, at: number) => {
      frame.textLength += text.length;
      if (frame.textLength > this.limits.maxText) {
        this.unsafe(`more than ${this.limits.maxText} characters of text in <${frame.el.name}>`, at);
      }
      frame.text.push(text);
    };
    for (;;) {
      if (this.startsWith("</")) {
        const at = this.pos;
        this.pos += 2;
        const name = this.name();
        this.skipWs();
        this.expect(">");
        const top = stack.pop();
        if (!top || top.el.name !== name) this.fail(`end tag </${name}> does not match`, at);
        top.el.text = top.text.join("");
        if (stack.length === 0) return root!;
      } else if (this.startsWith("<!--")) {
        this.comment();
      } else if (this.startsWith("<![CDATA[")) {
        const end = this.s.indexOf("]]>", this.pos + 9);
        if (end < 0) this.fail("unterminated CDATA section");
        if (end - this.pos > this.limits.maxText) this.unsafe(`more than ${this.limits.maxText} characters of text in <${stack[stack.length - 1].el.name}>`);
        addText(stack[stack.length - 1], this.s.slice(this.pos + 9, end), this.pos);
        this.pos = end + 3;
      } else if (this.startsWith("<!")) {
        this.refuseMarkupDeclaration();
      } else if (this.startsWith("<?")) {
        this.pi();
      } else if (this.startsWith("<")) {
        const at = this.pos;
        this.pos += 1;
        const name = this.name();
        if (stack.length >= this.limits.maxDepth) this.unsafe(`elements nested deeper than ${this.limits.maxDepth}`, at);
        if (++this.elements > this.limits.maxElements) {
          this.unsafe(`more than ${this.limits.maxElements} elements (a PSKC file has about 20 per key; split the file)`, at);
        }
        const raw: { name: string; value: string }[] = [];
        // XML 1.0 §3.1 (Unique Att Spec): checked with a set, so N attributes cost O(N).
        let rawNames: Set<string> | undefined;
        let selfClosing = false;
        for (;;) {
          const hadWs = this.skipWs();
          if (this.startsWith("/>")) {
            this.pos += 2;
            selfClosing = true;
            break;
          }
          if (this.startsWith(">")) {
            this.pos += 1;
            break;
          }
          if (!hadWs) this.fail("whitespace expected between attributes");
          const an = this.name();
          if (raw.length > 0) {
            rawNames ??= new Set([raw[0].name]);
            if (rawNames.has(an)) this.fail(`duplicate attribute ${an}`);
            rawNames.add(an);
          }
          if (raw.length >= this.limits.maxAttributes) {
            this.unsafe(`<${name}> has more than ${this.limits.maxAttributes} attributes`, at);
          }
          if (++this.attributes > this.limits.maxElements) {
            this.unsafe(`more than ${this.limits.maxElements} attributes in the file (a PSKC file has about 8 per key; split the file)`, at);
          }
          this.skipWs();
          this.expect("=");
          this.skipWs();
          raw.push({ name: an, value: this.attrValue() });
        }
        const parentScope = stack.length ? stack[stack.length - 1].scope : rootScope;
        let decl: Map<string, string> | undefined;
        for (const a of raw) {
          if (a.name === "xmlns" || a.name.startsWith("xmlns:")) {
            decl ??= new Map();
            const prefix = a.name === "xmlns" ? "" : a.name.slice(6);
            if (prefix === "xmlns" || (prefix === "xml" && a.value !== NS_XML)) this.fail(`reserved prefix ${prefix}`, at);
            if (prefix !== "" && a.value === "") this.fail(`prefix ${prefix} bound to the empty namespace`, at);
            if (a.value === NS_XMLNS) this.fail("the xmlns namespace cannot be bound", at);
            decl.set(prefix, a.value);
          }
        }
        const scope: Scope = decl ? { decl, parent: parentScope } : parentScope;
        const [elNs, elLocal] = this.resolve(scope, name, false, at);
        const attrs: XmlAttr[] = [];
        // Namespaces in XML 1.0 §6.3: no two attributes with the same expanded name.
        const expanded = raw.length > 1 ? new Set<string>() : undefined;
        for (const a of raw) {
          if (a.name === "xmlns" || a.name.startsWith("xmlns:")) continue;
          const [aNs, aLocal] = this.resolve(scope, a.name, true, at);
          const key = `${aNs} ${aLocal}`;
          if (expanded?.has(key)) this.fail(`duplicate attribute {${aNs}}${aLocal}`, at);
          expanded?.add(key);
          attrs.push({ ns: aNs, local: aLocal, name: a.name, value: a.value });
        }
        const el: XmlElement = { ns: elNs, local: elLocal, name, attrs, children: [], text: "", line: this.line(at) };
        if (stack.length) stack[stack.length - 1].el.children.push(el);
        else root = el;
        if (selfClosing) {
          if (stack.length === 0) return el;
        } else {
          stack.push({ el, scope, text: [], textLength: 0 });
        }
      } else {
        if (stack.length === 0) this.fail("text outside the root element");
        const at = this.pos;
        let end = this.s.indexOf("<", this.pos);
        if (end < 0) this.fail(`unclosed element <${stack[stack.length - 1].el.name}>`);
        if (end - this.pos > this.limits.maxText) {
          this.unsafe(`more than ${this.limits.maxText} characters of text in <${stack[stack.length - 1].el.name}>`, at);
        }
        const raw = this.s.slice(this.pos, end);
        if (raw.includes("]]>")) this.fail("']]>' in text", at);
        addText(stack[stack.length - 1], this.decode(raw, at), at);
        this.pos = end;
      }
      if (this.pos >= this.s.length) this.fail("unexpected end of document");
    }
  }
}

/**
 * Parse a whole document in time linear in its length. Throws PskcError:
 * `unsafe_xml` for a DOCTYPE, an entity declaration or reference, or a
 * limit passed (depth, elements, attributes per element, text per element);
 * `malformed` for anything not well-formed.
 */
export function parseXml(text: string, limits: Partial<XmlLimits> = {}): XmlElement {
  // XML 1.0 §2.11: line ends are normalised to LF before parsing.
  const t = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const s = t.includes("\r") ? t.replace(/\r\n?/g, "\n") : t;
  const p = new Parser(s, { ...XML_LIMITS, ...limits });
  const bad = BAD_CHAR.exec(s);
  if (bad) p.fail(`character U+${bad[0].charCodeAt(0).toString(16).padStart(4, "0")} is not allowed in XML`, bad.index);
  return p.document();
}

/** The value of an attribute in no namespace (how PSKC's attributes are written). */
export function attr(el: XmlElement, local: string, ns = ""): string | undefined {
  return el.attrs.find((a) => a.local === local && a.ns === ns)?.value;
}
