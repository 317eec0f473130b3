// The language and theme switches (in the top bar and on the login pages).
import { LANGS, useI18n, type Lang } from "../i18n";
import { useTheme } from "../theme";

export function LangSwitch() {
  const { lang, setLang, t } = useI18n();
  return (
    <select
      className="lang-switch"
      aria-label={t("shell.language")}
      value={lang}
      onChange={(e) => setLang(e.target.value as Lang)}
      data-testid="lang-switch"
    >
      {LANGS.map((l) => (
        <option key={l.id} value={l.id}>
          {l.label}
        </option>
      ))}
    </select>
  );
}

export function ThemeSwitch() {
  const { t } = useI18n();
  const [theme, toggle] = useTheme();
  return (
    <button
      type="button"
      className="btn btn-ghost icon-btn"
      onClick={toggle}
      aria-label={theme === "dark" ? t("shell.lightTheme") : t("shell.darkTheme")}
      title={theme === "dark" ? t("shell.lightTheme") : t("shell.darkTheme")}
      data-testid="theme-toggle"
    >
      {theme === "dark" ? "☀" : "☾"}
    </button>
  );
}
