// Plots as static SVG, rendered headless and offline: Vega-Lite specs compiled to Vega and rendered by
// Vega's own SVG renderer (no browser, no canvas, no network). Chosen over hand-drawn SVG for correct axes,
// scales and legends, and because a spec is data that users can restyle or re-render elsewhere.
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export type Row = Record<string, number | string>;

async function render(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Lines of y over x, one per series. */
export function linePlot(
  rows: Row[],
  o: {
    x: string;
    y: string;
    series: string;
    title: string;
    xTitle?: string;
    yTitle?: string;
    logX?: boolean;
    yDomain?: [number, number];
    /** false: the y scale fits the data instead of reaching 0 (small differences between curves stay visible) */
    yZero?: boolean;
    width?: number;
    height?: number;
    diagonal?: boolean;
    /** a second grouping drawn by stroke: rows whose `field` is values[0] solid, values[1] dashed */
    dash?: { field: string; values: [string, string] };
  },
): Promise<string> {
  const line = {
    mark: { type: 'line' as const, strokeWidth: 1.5 },
    encoding: {
      x: {
        field: o.x,
        type: 'quantitative' as const,
        title: o.xTitle ?? o.x,
        scale: o.logX ? { type: 'log' as const } : { zero: true },
      },
      y: {
        field: o.y,
        type: 'quantitative' as const,
        title: o.yTitle ?? o.y,
        ...(o.yDomain ? { scale: { domain: o.yDomain } } : o.yZero === false ? { scale: { zero: false } } : {}),
      },
      color: { field: o.series, type: 'nominal' as const, title: null, scale: { scheme: 'category20' } },
      ...(o.dash
        ? {
            strokeDash: {
              field: o.dash.field,
              type: 'nominal' as const,
              title: null,
              scale: {
                domain: o.dash.values,
                range: [
                  [1, 0],
                  [5, 3],
                ],
              },
            },
          }
        : {}),
    },
  };
  const layers: object[] = [line];
  if (o.diagonal)
    layers.push({
      data: { values: [{ d: 0 }, { d: 1 }] },
      mark: { type: 'line', strokeDash: [4, 4], color: '#999' },
      encoding: { x: { field: 'd', type: 'quantitative' }, y: { field: 'd', type: 'quantitative' } },
    });
  return render({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: o.title,
    width: o.width ?? 320,
    height: o.height ?? 260,
    data: { values: rows },
    layer: layers,
  } as TopLevelSpec);
}

/** Horizontal bars with a 95 % CI rule, one per category. */
export function barWithCi(
  rows: { name: string; value: number; lo?: number; hi?: number }[],
  o: { title: string; xTitle: string; domain?: [number, number] },
): Promise<string> {
  return render({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: o.title,
    width: 320,
    height: Math.max(60, 22 * rows.length),
    data: { values: rows },
    encoding: { y: { field: 'name', type: 'nominal', title: null, sort: null } },
    layer: [
      {
        mark: { type: 'bar', color: '#7aa6c2' },
        encoding: {
          x: {
            field: 'value',
            type: 'quantitative',
            title: o.xTitle,
            ...(o.domain ? { scale: { domain: o.domain } } : {}),
          },
        },
      },
      {
        mark: { type: 'rule', color: '#222' },
        encoding: { x: { field: 'lo', type: 'quantitative' }, x2: { field: 'hi' } },
      },
    ],
  } as TopLevelSpec);
}
