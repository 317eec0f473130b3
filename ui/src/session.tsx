// The logged-in user: loaded from GET /me at start, set by login, cleared by logout or by any
// 401 (the session expired or the user was disabled). Holds the CSRF token for the client.
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import { api, call, setCsrfToken, setUnauthorizedHandler, type MeDto } from "./api/client";

interface Session {
  /** undefined while loading, null when logged out. */
  me: MeDto | null | undefined;
  login(username: string, password: string): Promise<void>;
  logout(): Promise<void>;
  refresh(): Promise<void>;
  isAdmin: boolean;
  /** The caller's role in a team ("owner", "member", "viewer"), admins count as owners. */
  roleIn(team: string): string | null;
  /** Teams the caller may deploy to (member or owner; all teams' roles for admins). */
  writableTeams: string[];
}

const Ctx = createContext<Session | null>(null);

export function SessionProvider({ children }: { children: ReactNode }) {
  const [me, setMe] = useState<MeDto | null | undefined>(undefined);

  const refresh = useCallback(async () => {
    try {
      const m = await call(api.GET("/api/v1/me"));
      setCsrfToken(m.csrf_token ?? null);
      setMe(m);
    } catch {
      setCsrfToken(null);
      setMe(null);
    }
  }, []);

  useEffect(() => {
    setUnauthorizedHandler(() => {
      setCsrfToken(null);
      setMe(null);
    });
    void refresh();
  }, [refresh]);

  const login = useCallback(
    async (username: string, password: string) => {
      const r = await call(api.POST("/api/v1/auth/login", { body: { username, password } }));
      setCsrfToken(r.csrf_token);
      await refresh();
    },
    [refresh],
  );

  const logout = useCallback(async () => {
    try {
      await call(api.POST("/api/v1/auth/logout"));
    } finally {
      setCsrfToken(null);
      setMe(null);
    }
  }, []);

  const value = useMemo<Session>(() => {
    const isAdmin = !!me?.user.is_admin;
    const roles = new Map((me?.teams ?? []).map((t) => [t.team, t.role]));
    return {
      me,
      login,
      logout,
      refresh,
      isAdmin,
      roleIn: (team) => roles.get(team) ?? (isAdmin ? "owner" : null),
      writableTeams: (me?.teams ?? []).filter((t) => t.role !== "viewer").map((t) => t.team),
    };
  }, [me, login, logout, refresh]);
  return <Ctx.Provider value={value}>{children}</Ctx.Provider>;
}

export function useSession(): Session {
  const v = useContext(Ctx);
  if (!v) throw new Error("useSession outside SessionProvider");
  return v;
}
