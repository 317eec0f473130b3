// Light and dark themes: CSS variables switched by `data-theme` on <html> (set before first
// paint by index.html), kept in localStorage.
import { useCallback, useState } from "react";

export type Theme = "light" | "dark";

export function useTheme(): [Theme, () => void] {
  const [theme, setTheme] = useState<Theme>(() =>
    document.documentElement.dataset.theme === "dark" ? "dark" : "light",
  );
  const toggle = useCallback(() => {
    setTheme((t) => {
      const next: Theme = t === "dark" ? "light" : "dark";
      document.documentElement.dataset.theme = next;
      localStorage.setItem("berth.theme", next);
      return next;
    });
  }, []);
  return [theme, toggle];
}
