// The list editor the create and deploy forms share for an app's volumes, secrets and
// environment variables: a fieldset of rows, each with its own fields and a remove button, an
// add button, and the server's message about the list as a whole (one no row's field shows).
import type { ReactNode } from "react";
import type { ApiError } from "../api/client";
import { fieldProblem } from "./ui";

/**
 * Rows of `value`, each drawn by `children(row, i, update)`; `update(i, change)` merges a
 * change into row i. `blank()` is the row the add button appends. `whole` names the fields
 * the server uses for the list as a whole (`volumes`, `sensitive_env`), shown under the rows
 * with the label `legend` when the error is about exactly one of them.
 */
export function RowsEditor<R>({
  legend,
  help,
  testId,
  rowTestId,
  rowClass,
  value,
  onChange,
  blank,
  addLabel,
  removeLabel,
  removeShort,
  whole,
  error,
  children,
}: {
  legend: string;
  help?: ReactNode;
  testId: string;
  rowTestId: string;
  rowClass: string;
  value: R[];
  onChange: (rows: R[]) => void;
  blank: () => R;
  addLabel: string;
  /** The remove button's accessible name for row `n` (counted from 1). */
  removeLabel: (n: number) => string;
  removeShort: string;
  whole: string[];
  error?: ApiError;
  children: (row: R, i: number, update: (change: Partial<R>) => void) => ReactNode;
}) {
  const update = (i: number) => (change: Partial<R>) => onChange(value.map((row, j) => (j === i ? { ...row, ...change } : row)));
  const problems = whole
    .map((name) => fieldProblem(error, name))
    .filter((p): p is { field: string; message: string } => !!p && whole.includes(p.field));
  return (
    <fieldset className="probe" data-testid={testId}>
      <legend>{legend}</legend>
      {help && <p className="muted">{help}</p>}
      {value.map((row, i) => (
        <div className={`editor-row ${rowClass}`} key={i} data-testid={rowTestId}>
          {children(row, i, update(i))}
          <button
            type="button"
            className="btn btn-danger-outline"
            aria-label={removeLabel(i + 1)}
            onClick={() => onChange(value.filter((_, j) => j !== i))}
          >
            {removeShort}
          </button>
        </div>
      ))}
      {problems.map((p) => (
        <div className="field-error" data-field={p.field} key={p.field}>
          {legend}: {p.message}
        </div>
      ))}
      <div>
        <button type="button" className="btn btn-small" onClick={() => onChange([...value, blank()])}>
          {addLabel}
        </button>
      </div>
    </fieldset>
  );
}
