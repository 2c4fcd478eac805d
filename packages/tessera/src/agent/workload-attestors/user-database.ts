import { readFile } from 'node:fs/promises';

/**
 * Names for numeric ids from passwd(5) and group(5) files — parsed here rather
 * than via getpwuid(3), which Node does not expose for arbitrary ids (NSS
 * sources other than files, e.g. LDAP, are therefore not consulted).
 */
export interface UserDatabase {
  userName(uid: number): Promise<string | undefined>;
  groupName(gid: number): Promise<string | undefined>;
}

/** Parses passwd(5) text: `name:password:uid:gid:gecos:home:shell`. First entry per uid wins, like getpwuid. */
export function parsePasswd(text: string): Map<number, string> {
  return parseIdFile(text, 7);
}

/** Parses group(5) text: `name:password:gid:members`. First entry per gid wins, like getgrgid. */
export function parseGroup(text: string): Map<number, string> {
  return parseIdFile(text, 4);
}

function parseIdFile(text: string, minFields: number): Map<number, string> {
  const byId = new Map<number, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(':');
    if (fields.length < minFields) continue;
    const [name, , idText] = fields;
    if (!name || idText === undefined || !/^\d+$/.test(idText)) continue; // NIS "+"/"-" lines, junk
    const id = Number(idText);
    if (!byId.has(id)) byId.set(id, name);
  }
  return byId;
}

/**
 * Reads /etc/passwd and /etc/group, re-reading a file only when its text may
 * have changed (at most once per `ttlMs`, default 5 s), so adding a user is seen soon.
 */
export function fileUserDatabase(options: { passwdPath?: string; groupPath?: string; ttlMs?: number; now?: () => number } = {}): UserDatabase {
  const ttl = options.ttlMs ?? 5000;
  const now = options.now ?? Date.now;
  const cached = (path: string, parse: (t: string) => Map<number, string>) => {
    let at = -Infinity;
    let value: Promise<Map<number, string>> | undefined;
    return (): Promise<Map<number, string>> => {
      if (value === undefined || now() - at >= ttl) {
        at = now();
        value = readFile(path, 'utf8').then(parse, () => new Map<number, string>());
      }
      return value;
    };
  };
  const users = cached(options.passwdPath ?? '/etc/passwd', parsePasswd);
  const groups = cached(options.groupPath ?? '/etc/group', parseGroup);
  return {
    userName: async (uid) => (await users()).get(uid),
    groupName: async (gid) => (await groups()).get(gid),
  };
}
