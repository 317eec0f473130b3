// Routes and the shell: a sidebar of sections (a drawer on narrow screens), the language and
// theme switches, and the user menu. Every view has its own URL.
import { useEffect, useState, type ReactNode } from "react";
import { Navigate, NavLink, Route, Routes, useLocation, useNavigate } from "react-router";
import { Loading } from "./components/ui";
import { LangSwitch, ThemeSwitch } from "./components/switches";
import { useI18n } from "./i18n";
import { AccountPage } from "./pages/Account";
import { AdminDomainsPage } from "./pages/AdminDomains";
import { AdminUsersPage } from "./pages/AdminUsers";
import { AppDetailPage } from "./pages/AppDetail";
import { AppsPage } from "./pages/Apps";
import { AuditPage } from "./pages/Audit";
import { BuildDetailPage } from "./pages/Build";
import { ComposeImportPage } from "./pages/ComposeImport";
import { CreateAppPage } from "./pages/CreateApp";
import { ImageDetailPage, ImagesPage, RegistryPage } from "./pages/Images";
import { LoginPage, RegisterPage } from "./pages/Login";
import { ClusterBanner, NodesPage } from "./pages/Nodes";
import { PipelineDetailPage, PipelineEditPage, PipelinesPage } from "./pages/Pipelines";
import { QuotaRequestsPage } from "./pages/QuotaRequests";
import { ExternalImagePage, RegistriesPage, RegistryDetailPage, RegistryEditPage } from "./pages/Registries";
import { SecretsPage } from "./pages/Secrets";
import { TeamPage, TeamsPage } from "./pages/Teams";
import { TemplateEditPage, TemplatesPage } from "./pages/Templates";
import { TopologyPage } from "./pages/Topology";
import { VolumeDetailPage, VolumesPage } from "./pages/Volumes";
import { useSession } from "./session";

export function App() {
  const { me } = useSession();
  const location = useLocation();
  if (me === undefined) return <Loading />;
  if (me === null) {
    const next = location.pathname + location.search;
    return (
      <Routes>
        <Route path="/login" element={<LoginPage />} />
        <Route path="/register" element={<RegisterPage />} />
        <Route
          path="*"
          element={<Navigate to={next === "/" ? "/login" : `/login?next=${encodeURIComponent(next)}`} replace />}
        />
      </Routes>
    );
  }
  return (
    <Shell>
      <Routes>
        <Route path="/" element={<Navigate to="/apps" replace />} />
        <Route path="/login" element={<AfterLogin />} />
        <Route path="/register" element={<Navigate to="/apps" replace />} />
        <Route path="/apps" element={<AppsPage />} />
        <Route path="/apps/new" element={<CreateAppPage />} />
        <Route path="/apps/import" element={<ComposeImportPage />} />
        <Route path="/apps/:name/*" element={<AppDetailPage />} />
        <Route path="/topology" element={<TopologyPage />} />
        <Route path="/pipelines" element={<PipelinesPage />} />
        <Route path="/pipelines/new" element={<PipelineEditPage />} />
        <Route path="/pipelines/:team/:name" element={<PipelineDetailPage />} />
        <Route path="/pipelines/:team/:name/edit" element={<PipelineEditPage />} />
        <Route path="/builds/:id" element={<BuildDetailPage />} />
        <Route path="/images" element={<ImagesPage />} />
        <Route path="/images/*" element={<ImageDetailPage />} />
        <Route path="/registry" element={<RegistryPage />} />
        <Route path="/registries" element={<RegistriesPage />} />
        <Route path="/registries/new" element={<RegistryEditPage />} />
        <Route path="/registries/:name" element={<RegistryDetailPage />} />
        <Route path="/registries/:name/edit" element={<RegistryEditPage />} />
        <Route path="/registries/:name/images/*" element={<ExternalImagePage />} />
        <Route path="/volumes" element={<VolumesPage />} />
        <Route path="/volumes/:team/:name" element={<VolumeDetailPage />} />
        <Route path="/secrets" element={<SecretsPage />} />
        <Route path="/teams" element={<TeamsPage />} />
        <Route path="/teams/:team" element={<TeamPage />} />
        <Route path="/quota-requests" element={<QuotaRequestsPage />} />
        <Route path="/templates" element={<TemplatesPage />} />
        <Route path="/templates/new" element={<TemplateEditPage />} />
        <Route path="/templates/:team/:name" element={<TemplateEditPage />} />
        <Route path="/nodes" element={<NodesPage />} />
        <Route path="/audit" element={<AuditPage />} />
        <Route path="/admin/users" element={<AdminUsersPage />} />
        <Route path="/admin/domains" element={<AdminDomainsPage />} />
        <Route path="/account" element={<AccountPage />} />
        <Route path="*" element={<NotFound />} />
      </Routes>
    </Shell>
  );
}

/** After logging in, go where the user was headed. */
function AfterLogin() {
  const next = new URLSearchParams(useLocation().search).get("next");
  return <Navigate to={next && next.startsWith("/") && !next.startsWith("//") ? next : "/apps"} replace />;
}

function NotFound() {
  const { t } = useI18n();
  return (
    <div className="empty">
      <h1>{t("common.pageNotFound")}</h1>
      <NavLink to="/apps">{t("nav.apps")}</NavLink>
    </div>
  );
}

/** Whether a CSS media query matches, following changes. */
function useMediaQuery(query: string): boolean {
  const [matches, setMatches] = useState(() => window.matchMedia(query).matches);
  useEffect(() => {
    const mq = window.matchMedia(query);
    const on = () => setMatches(mq.matches);
    on();
    mq.addEventListener("change", on);
    return () => mq.removeEventListener("change", on);
  }, [query]);
  return matches;
}

function Shell({ children }: { children: ReactNode }) {
  const { t } = useI18n();
  const { me, isAdmin, logout } = useSession();
  const [open, setOpen] = useState(false);
  const location = useLocation();
  const navigate = useNavigate();
  useEffect(() => setOpen(false), [location.pathname]);
  // On a narrow screen the sidebar is a drawer: while closed it is out of the tab order and
  // out of the accessibility tree (inert); Escape closes it.
  const narrow = useMediaQuery("(max-width: 820px)");
  const hidden = narrow && !open;
  useEffect(() => {
    if (!open) return;
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") setOpen(false);
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [open]);

  const links: { to: string; label: string; show: boolean }[] = [
    { to: "/apps", label: t("nav.apps"), show: true },
    { to: "/topology", label: t("nav.topology"), show: true },
    { to: "/pipelines", label: t("nav.pipelines"), show: true },
    { to: "/images", label: t("nav.images"), show: true },
    { to: "/registry", label: t("nav.registry"), show: true },
    { to: "/registries", label: t("registries.title"), show: true },
    { to: "/volumes", label: t("nav.volumes"), show: true },
    { to: "/secrets", label: t("nav.secrets"), show: true },
    { to: "/teams", label: t("nav.teams"), show: true },
    { to: "/quota-requests", label: t("nav.quotaRequests"), show: true },
    { to: "/templates", label: t("nav.templates"), show: true },
    { to: "/nodes", label: t("nav.nodes"), show: true },
    { to: "/audit", label: t("nav.audit"), show: true },
    { to: "/admin/users", label: t("nav.users"), show: isAdmin },
    { to: "/admin/domains", label: t("nav.domains"), show: isAdmin },
    { to: "/account", label: t("account.title"), show: true },
  ];
  return (
    <div className={"shell" + (open ? " nav-open" : "")}>
      <a className="skip-link" href="#main">
        {t("shell.skip")}
      </a>
      <header className="topbar">
        <button
          type="button"
          className="btn btn-ghost icon-btn menu-btn"
          aria-label={t("shell.menu")}
          aria-expanded={open}
          aria-controls="sections"
          onClick={() => setOpen((o) => !o)}
        >
          ☰
        </button>
        <NavLink to="/apps" className="brand">
          <img src="/favicon.svg" alt="" width={24} height={24} /> Berth
        </NavLink>
        <div className="topbar-right">
          <LangSwitch />
          <ThemeSwitch />
          <NavLink to="/account" className="user-link" data-testid="user-link">
            {me?.user.display_name || me?.user.username}
          </NavLink>
          <button
            type="button"
            className="btn btn-ghost"
            onClick={async () => {
              await logout();
              navigate("/login");
            }}
          >
            {t("shell.logout")}
          </button>
        </div>
      </header>
      <nav className="sidebar" id="sections" aria-label={t("shell.sections")} inert={hidden} data-testid="sidebar">
        {links
          .filter((l) => l.show)
          .map((l) => (
            <NavLink
              key={l.to}
              to={l.to}
              className={({ isActive }) =>
                isActive || (l.to === "/pipelines" && location.pathname.startsWith("/builds/")) ? "active" : undefined
              }
            >
              {l.label}
            </NavLink>
          ))}
      </nav>
      <div className="scrim" onClick={() => setOpen(false)} />
      <main id="main" className="content">
        <ClusterBanner />
        {children}
      </main>
    </div>
  );
}
