// Deploy's check of a bun bundle's code, without running it: every TS/JS file under code/
// must parse, and the entry point must have a default export that mentions `fetch`.
// Reads {"entry": "code/index.ts", "files": {"code/index.ts": "source", …}} on stdin and
// prints {"errors": ["code/index.ts:3:25: Expected …", …]}.

const LOADERS: Record<string, "ts" | "tsx" | "js" | "jsx"> = {
  ts: "ts", mts: "ts", cts: "ts", tsx: "tsx", js: "js", mjs: "js", cjs: "js", jsx: "jsx",
};

type Input = { entry: string; files: Record<string, string> };

function check({ entry, files }: Input): string[] {
  const errors: string[] = [];
  for (const [name, source] of Object.entries(files)) {
    const loader = LOADERS[name.split(".").pop() ?? ""];
    if (loader === undefined) continue;
    const transpiler = new Bun.Transpiler({ loader });
    try {
      const { exports } = transpiler.scan(source);
      if (name === entry) {
        const code = transpiler.transformSync(source);
        if (!exports.includes("default") || !/\bfetch\b/.test(code)) {
          errors.push(`${name}: must \`export default { fetch(request, env, ctx) }\``);
        }
      }
    } catch (err) {
      errors.push(...describe(name, err));
    }
  }
  return errors;
}

function describe(name: string, err: unknown): string[] {
  const list = (err as { errors?: unknown[] })?.errors;
  const items = Array.isArray(list) && list.length ? list : [err];
  return items.slice(0, 5).map((item: any) => {
    const at = item?.position;
    const where = at ? `${name}:${at.line}:${at.column}` : name;
    return `${where}: ${String(item?.message ?? item).split("\n")[0]}`;
  });
}

export {};

const input = (await Bun.stdin.json()) as Input;
console.log(JSON.stringify({ errors: check(input) }));
