/** One benchmark figure, measured with its peer in the same run. */
export interface BenchResult {
  name: string;
  ours: number;
  peer: number;
  peerName: string;
  unit: string;
  lowerIsBetter: boolean;
  notes?: string;
}
