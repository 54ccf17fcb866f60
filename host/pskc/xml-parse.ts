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
 */
import { NS_XML, NS_XMLNS, MAX_DEPTH } from "./constants.js";
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

class Parser {
  pos = 0;
  private lineNo = 1;
  private linePos = 0;

  constructor(
    readonly s: string,
    private readonly maxDepth: number,
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
    type Frame = { el: XmlElement; ns: Map<string, string>; text: string[] };
    const rootNs = new Map<string, string>([["xml", NS_XML]]);
    const stack: Frame[] = [];
    let root: XmlElement | undefined;
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
        stack[stack.length - 1].text.push(this.s.slice(this.pos + 9, end));
        this.pos = end + 3;
      } else if (this.startsWith("<!")) {
        this.refuseMarkupDeclaration();
      } else if (this.startsWith("<?")) {
        this.pi();
      } else if (this.startsWith("<")) {
        const at = this.pos;
        this.pos += 1;
        const name = this.name();
        const raw: { name: string; value: string }[] = [];
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
          this.skipWs();
          this.expect("=");
          this.skipWs();
          const value = this.attrValue();
          if (raw.some((a) => a.name === an)) this.fail(`duplicate attribute ${an}`);
          raw.push({ name: an, value });
        }
        if (stack.length >= this.maxDepth) this.unsafe(`elements nested deeper than ${this.maxDepth}`, at);
        const parentNs = stack.length ? stack[stack.length - 1].ns : rootNs;
        let ns = parentNs;
        for (const a of raw) {
          if (a.name === "xmlns" || a.name.startsWith("xmlns:")) {
            if (ns === parentNs) ns = new Map(parentNs);
            const prefix = a.name === "xmlns" ? "" : a.name.slice(6);
            if (prefix === "xmlns" || (prefix === "xml" && a.value !== NS_XML)) this.fail(`reserved prefix ${prefix}`, at);
            if (prefix !== "" && a.value === "") this.fail(`prefix ${prefix} bound to the empty namespace`, at);
            if (a.value === NS_XMLNS) this.fail("the xmlns namespace cannot be bound", at);
            ns.set(prefix, a.value);
          }
        }
        const resolve = (qname: string, isAttr: boolean): [string, string] => {
          const parts = qname.split(":");
          if (parts.length > 2 || parts.some((p) => p === "")) this.fail(`bad qualified name ${qname}`, at);
          if (parts.length === 1) return [isAttr ? "" : ns.get("") ?? "", qname];
          const uri = ns.get(parts[0]);
          if (uri === undefined) this.fail(`namespace prefix ${parts[0]} is not declared`, at);
          return [uri, parts[1]];
        };
        const [elNs, elLocal] = resolve(name, false);
        const attrs: XmlAttr[] = [];
        for (const a of raw) {
          if (a.name === "xmlns" || a.name.startsWith("xmlns:")) continue;
          const [aNs, aLocal] = resolve(a.name, true);
          if (attrs.some((b) => b.ns === aNs && b.local === aLocal)) this.fail(`duplicate attribute {${aNs}}${aLocal}`, at);
          attrs.push({ ns: aNs, local: aLocal, name: a.name, value: a.value });
        }
        const el: XmlElement = { ns: elNs, local: elLocal, name, attrs, children: [], text: "", line: this.line(at) };
        if (stack.length) stack[stack.length - 1].el.children.push(el);
        else root = el;
        if (selfClosing) {
          if (stack.length === 0) return el;
        } else {
          stack.push({ el, ns, text: [] });
        }
      } else {
        if (stack.length === 0) this.fail("text outside the root element");
        const at = this.pos;
        let end = this.s.indexOf("<", this.pos);
        if (end < 0) this.fail(`unclosed element <${stack[stack.length - 1].el.name}>`);
        const raw = this.s.slice(this.pos, end);
        if (raw.includes("]]>")) this.fail("']]>' in text", at);
        stack[stack.length - 1].text.push(this.decode(raw, at));
        this.pos = end;
      }
      if (this.pos >= this.s.length) this.fail("unexpected end of document");
    }
  }
}

/**
 * Parse a whole document. Throws PskcError: `unsafe_xml` for a DOCTYPE,
 * an entity declaration or reference, or nesting deeper than `maxDepth`;
 * `malformed` for anything not well-formed.
 */
export function parseXml(text: string, maxDepth = MAX_DEPTH): XmlElement {
  // XML 1.0 §2.11: line ends are normalised to LF before parsing.
  const t = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const s = t.includes("\r") ? t.replace(/\r\n?/g, "\n") : t;
  const p = new Parser(s, maxDepth);
  const bad = BAD_CHAR.exec(s);
  if (bad) p.fail(`character U+${bad[0].charCodeAt(0).toString(16).padStart(4, "0")} is not allowed in XML`, bad.index);
  return p.document();
}

/** The value of an attribute in no namespace (how PSKC's attributes are written). */
export function attr(el: XmlElement, local: string, ns = ""): string | undefined {
  return el.attrs.find((a) => a.local === local && a.ns === ns)?.value;
}
