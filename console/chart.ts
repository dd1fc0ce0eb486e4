// A live time-series chart on uPlot: created once, fed new data on every poll, resized with its box.
import { html } from 'htm/preact';
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface ChartSeries {
  label: string;
  color: string;
}

const HEIGHT_PX = 180;

export function TimeChart(props: {
  title: string;
  series: ChartSeries[];
  /** [timestamps in seconds, ...one array per series] */
  data: number[][];
  format: (v: number) => string;
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const { title, series, format } = props;

  useEffect(() => {
    const el = box.current!;
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height: HEIGHT_PX,
      series: [
        {},
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          fill: `${s.color}22`,
          value: (_u: uPlot, v: number | null) => (v === null ? '—' : format(v)),
        })),
      ],
      axes: [
        { stroke: '#8a94a6', grid: { stroke: '#8a94a622' } },
        {
          stroke: '#8a94a6',
          grid: { stroke: '#8a94a622' },
          size: 86,
          values: (_u: uPlot, vals: number[]) => vals.map((v) => format(v)),
        },
      ],
      scales: { y: { range: (_u: uPlot, _min: number, max: number) => [0, Math.max(max, 1)] } },
      legend: { live: true },
    };
    plot.current = new uPlot(opts, props.data as uPlot.AlignedData, el);
    const resize = new ResizeObserver(() => {
      plot.current?.setSize({ width: Math.max(200, el.clientWidth), height: HEIGHT_PX });
    });
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
    // The chart is built once per series layout; data flows in through the effect below.
  }, [series.map((s) => s.label).join()]);

  useEffect(() => {
    plot.current?.setData(props.data as uPlot.AlignedData);
  }, [props.data]);

  return html`<figure class="chart">
    <figcaption>${title}</figcaption>
    <div ref=${box} class="chart-box" role="img" aria-label=${`${title} over the last minutes`}></div>
  </figure>`;
}
