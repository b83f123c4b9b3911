// Placeholder translation unit; the interposer lands here (issue: MPI layer).
