// Placeholder replaced by the SPIFFE bundle implementation.
export declare class SpiffeBundle {}
