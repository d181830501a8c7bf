using GenService.Generation.Budgets;

namespace GenService.Api.Families.Common;

/// <summary>
/// Admits a loop job's work (<see cref="WorkBudget"/>) for the rest of the HTTP request: the lease is disposed with
/// the response, so the caller's share comes back however the request ends (completed, failed, cancelled, 504, or a
/// stream the client dropped), including after an SSE body that outlives the endpoint method.
/// </summary>
internal static class WorkAdmission
{
    public static void Admit(HttpContext http, WorkBudget budget, WorkRequest work) =>
        http.Response.RegisterForDispose(budget.Admit(work));
}
