/** Levels in increasing severity. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

/**
 * A structured logger writing one JSON object per line (time, level, msg,
 * fields), the shape log pipelines expect from daemons.
 */
export function createLogger(options: { level?: LogLevel; write?: (line: string) => void; now?: () => Date; base?: Record<string, unknown> } = {}): Logger {
  const min = ORDER[options.level ?? 'info'];
  const write = options.write ?? ((line: string) => void process.stderr.write(line));
  const now = options.now ?? (() => new Date());
  const base = options.base ?? {};
  const log = (level: LogLevel, msg: string, fields?: Record<string, unknown>): void => {
    if (ORDER[level] < min) return;
    const rec: Record<string, unknown> = { time: now().toISOString(), level, msg, ...base, ...fields };
    for (const [k, v] of Object.entries(rec)) if (v instanceof Error) rec[k] = v.message;
    write(JSON.stringify(rec) + '\n');
  };
  return {
    debug: (m, f) => log('debug', m, f),
    info: (m, f) => log('info', m, f),
    warn: (m, f) => log('warn', m, f),
    error: (m, f) => log('error', m, f),
    child: (fields) => createLogger({ ...options, base: { ...base, ...fields } }),
  };
}
