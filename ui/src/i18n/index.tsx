// A tiny i18n layer: two dictionaries with the same typed keys (a key missing from one fails
// `tsc`), `{name}` placeholders, the language kept in localStorage and switchable at run time.
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import { en } from "./en";
import { zhCN } from "./zh-CN";

export type Key = keyof typeof en;
export type Dict = Record<Key, string>;
export type Lang = "en" | "zh-CN";
export const LANGS: { id: Lang; label: string }[] = [
  { id: "en", label: "English" },
  { id: "zh-CN", label: "简体中文" },
];
const dicts: Record<Lang, Dict> = { en, "zh-CN": zhCN };

/** Whether `key` is a dictionary key (for labels of values the server sends). */
export function hasKey(key: string): key is Key {
  return Object.prototype.hasOwnProperty.call(en, key);
}

export type Vars = Record<string, string | number>;
export type T = (key: Key, vars?: Vars) => string;

interface I18n {
  lang: Lang;
  setLang(lang: Lang): void;
  t: T;
  /** Formats a number in the current language. */
  num(n: number): string;
}

const Ctx = createContext<I18n | null>(null);

function initialLang(): Lang {
  const saved = localStorage.getItem("berth.lang");
  if (saved === "en" || saved === "zh-CN") return saved;
  return navigator.language.toLowerCase().startsWith("zh") ? "zh-CN" : "en";
}

export function format(template: string, vars?: Vars): string {
  if (!vars) return template;
  return template.replace(/\{(\w+)\}/g, (m, k: string) => (k in vars ? String(vars[k]) : m));
}

export function I18nProvider({ children }: { children: ReactNode }) {
  const [lang, setLangState] = useState<Lang>(initialLang);
  useEffect(() => {
    document.documentElement.lang = lang;
  }, [lang]);
  const setLang = useCallback((l: Lang) => {
    localStorage.setItem("berth.lang", l);
    setLangState(l);
  }, []);
  const value = useMemo<I18n>(() => {
    const dict = dicts[lang];
    const nf = new Intl.NumberFormat(lang);
    return { lang, setLang, t: (key, vars) => format(dict[key], vars), num: (n) => nf.format(n) };
  }, [lang, setLang]);
  return <Ctx.Provider value={value}>{children}</Ctx.Provider>;
}

export function useI18n(): I18n {
  const v = useContext(Ctx);
  if (!v) throw new Error("useI18n outside I18nProvider");
  return v;
}
